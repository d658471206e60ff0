"""The format stage: detecting a file's format and dialect and reading it into polars frames."""
