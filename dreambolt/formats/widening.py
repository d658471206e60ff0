"""Column types across parts of a file or files: widening for later blocks, joint CSV checks.

`later_block` parses a block after the first with the schema so far, widening a column (by
`merged`, as polars infers from both at once) where its values need it, without loss.
`faithful` tells which small CSVs parsed together (`formats.many.read_many`) got the types each
would get parsed alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from dreambolt.formats.dialect import Dialect, polars_options
from dreambolt.formats.jsondepth import json_too_deep
from dreambolt.formats.limits import DType, ParseLimits, nesting, replaced, too_deep

__all__ = ["faithful", "later_block", "merged"]


def later_block(
    block: bytes,
    kind: str,
    schema: pl.Schema,
    limits: ParseLimits,
    dialect: Dialect | None = None,
) -> pl.DataFrame:
    """Parse a block after the first: with the schema so far, widened or grown where its values
    need it, without loss (else an error saying which column). CSV is read in `dialect` (the
    one the first block was read in)."""
    if dialect is None:
        dialect = Dialect(separator="\t" if kind == "tsv" else ",")
    options = polars_options(dialect, first=False)
    decimal = pl.Decimal(38, 0)  # Int128 as handed on (`arrow_ready`): read it as polars infers
    schema = pl.Schema({c: replaced(d, decimal, pl.Int128) for c, d in schema.items()})
    found, fits = _read_as(block, kind, schema, options, limits)
    if fits:
        return found
    json = kind == "ndjson"
    target = _widened(schema, found, json=json)
    if json and all(target[c] == found.schema[c] for c in found.columns):
        missing = (pl.lit(None, d).alias(c) for c, d in target.items() if c not in found.schema)
        return found.with_columns(missing).select(list(target))
    frame = (
        pl.read_ndjson(block, schema=target)
        if json
        else pl.read_csv(block, schema=target, raise_if_empty=False, **options)
    )
    _check_exact(frame, found, target)
    return frame


def _read_as(
    block: bytes, kind: str, schema: pl.Schema, options: dict[str, Any], limits: ParseLimits
) -> tuple[pl.DataFrame, bool]:
    """The block read with `schema` and True when its values fit it; else the block read with
    the types its own values have, and False."""
    if kind != "ndjson":
        try:
            return pl.read_csv(block, schema=schema, raise_if_empty=False, **options), True
        except pl.exceptions.ComputeError:  # a value that does not fit: see what the block holds
            names = list(schema)
            inferred = pl.read_csv(
                block, raise_if_empty=False, new_columns=names, infer_schema_length=None, **options
            )
            return inferred, False
    if (at := json_too_deep(block, nesting(limits) + 1, lines=True)) is not None:
        raise too_deep(f"the JSON at byte {at:,} of this part", None, limits)
    found = pl.read_ndjson(block, infer_schema_length=None)
    return found, found.schema == schema


def _widened(schema: pl.Schema, found: pl.DataFrame, *, json: bool) -> dict[str, DType]:
    """The schema so far, each column widened to hold the values `found` (or added)."""
    target: dict[str, DType] = dict(schema)
    for column, dtype in found.schema.items():
        wider = merged(target[column], dtype, json=json) if column in target else dtype
        if wider is None:
            raise ValueError(
                f"column {column!r} holds {dtype} values here, {target[column]} "
                "before, and no one type holds both"
            )
        target[column] = wider
    return target


def _check_exact(frame: pl.DataFrame, found: pl.DataFrame, target: dict[str, DType]) -> None:
    """Integers read as Float64 (widened for floats elsewhere) must stay exact."""
    for column, dtype in found.schema.items():
        if target[column] == pl.Float64 and dtype.is_integer():
            exact = frame[column].cast(dtype, strict=False).eq_missing(found[column]).all()
            if not exact:
                raise ValueError(
                    f"column {column!r} holds integers here that Float64, the "
                    "type of its earlier values, cannot hold exactly"
                )


def merged(old: DType, new: DType, *, json: bool) -> DType | None:
    """The type of a column of `old` values that gets `new` ones too, as polars infers it from
    both at once (for CSV text, or JSON); None if there is none."""
    if old == new or new == pl.Null:
        return old
    if old == pl.Null:
        return new
    if _numeric(old) and _numeric(new):
        return pl.Float64() if pl.Float64 in (old, new) else pl.Int128()
    if not json or pl.String in (old, new):
        return pl.String()  # CSV keeps the text as written; JSON of mixed kinds is read as text
    if isinstance(old, pl.List) and isinstance(new, pl.List):
        inner = merged(old.inner, new.inner, json=json)
        return pl.List(inner) if inner is not None else None
    if isinstance(old, pl.Struct) and isinstance(new, pl.Struct):
        fields = {field.name: field.dtype for field in old.fields}
        for field in new.fields:
            both = merged(fields.get(field.name, pl.Null()), field.dtype, json=json)
            if both is None:
                return None
            fields[field.name] = both
        return pl.Struct(fields)
    return None


def _numeric(dtype: DType) -> bool:
    return dtype.is_integer() or dtype == pl.Float64


# polars types a CSV column by the kinds of its values (these are its own regular expressions):
# one kind gives its type, integers with floats Float64, anything else String (so does no value).
_BOOLEAN, _INTEGER = r"^(?i:true|false)$", r"^-?(\d+)$"
_FLOAT = r"^[-+]?((\d*\.\d+)([eE][-+]?\d+)?|inf|NaN|(\d+)[eE][-+]?\d+|\d+\.)$"


def faithful(schema: pl.Schema, text: pl.DataFrame, counts: list[int]) -> list[bool]:
    """For each file of a joint CSV parse (`counts` rows each, `text` its values as written),
    whether inference over that file alone gives every column its joint type. Errs to False."""
    tests = []
    for name, dtype in schema.items():
        value = pl.col(name)
        if dtype in (pl.Int64, pl.Boolean):  # every value is of that kind: one value is enough
            tests.append(value.is_not_null().any())
        elif dtype == pl.Float64:  # needs a float, and no integer big enough for Int128
            small = value.str.contains(_FLOAT) | value.str.contains(r"^-?\d{1,18}$")
            tests.append(value.str.contains(_FLOAT).any() & (value.is_null() | small).all())
        elif dtype == pl.String:  # needs no value, or one of none of the other kinds
            kind = value.str.contains(_BOOLEAN) | value.str.contains(_INTEGER)
            kind = kind | value.str.contains(_FLOAT)
            tests.append(value.is_null().all() | (value.is_not_null() & ~kind).any())
        else:
            tests.append(pl.lit(False))
    file = "file"
    while file in schema:
        file += "_"
    numbers = pl.Series(file, np.repeat(np.arange(len(counts)), counts))
    verdict = text.with_columns(numbers).group_by(file).agg(pl.all_horizontal(tests).alias("ok"))
    good = {int(i) for i, ok in verdict.iter_rows() if ok}
    return [i in good for i in range(len(counts))]  # a file without rows is parsed alone
