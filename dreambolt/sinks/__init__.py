"""Destinations DreamBolt writes to (DuckDB by default)."""

from .duckdb import DuckDBSink

__all__ = ["DuckDBSink"]
