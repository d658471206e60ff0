"""The sources stage: what the user named (S3 URIs, prefixes, globs, local paths) expanded into
the files to load (`expand`), each a `Source`."""

from dreambolt.sources.inputs import default_table_name, expand, parse_input
from dreambolt.sources.source import Source
from dreambolt.spool import Spool, new_spool, open_spool  # where fetched files are kept

__all__ = [
    "Source",
    "Spool",
    "default_table_name",
    "expand",
    "new_spool",
    "open_spool",
    "parse_input",
]
