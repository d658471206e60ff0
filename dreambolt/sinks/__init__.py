"""Destinations DreamBolt writes to (DuckDB by default)."""

from dreambolt.sinks.duckdb import DuckDBSink

__all__ = ["DuckDBSink"]
