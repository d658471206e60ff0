"""A real-world file corpus, compared with reference readers (issue 11).

The corpus is built at test time from data files that ship inside pinned, installed packages
(`collect`) and from those datasets as other tools write them (`written`: pandas, polars,
pyarrow, DuckDB, Python's csv module; generated into .venv/corpus-written/). Each file is read
by a reference reader (`reference`: DuckDB's CSV sniffer and JSON reader, pyarrow for Parquet
and Arrow IPC) and by `Ingester().load()`, and the two tables are compared by row count, column
names and per-column checksums (`compare`). `run` does it for many files in worker processes,
each file under a time limit. `KNOWN` lists the files whose difference is a documented,
deliberate choice.

Used by tests/test_corpus.py (a deterministic sample) and scripts/corpus.py (`make corpus`, all).
"""
