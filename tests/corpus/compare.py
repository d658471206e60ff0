"""Compare DreamBolt's table with the reference reader's: rows, column names, column values.

Columns are paired by position. Each pair gets an order-insensitive multiset checksum.

Scalar columns are compared in one in-memory DuckDB connection: the count of non-null values
and the sum of `hash(value)` (unlike a XOR, a value twice is not a value never).
- Same DuckDB type: the checksums of the raw columns are compared.
- Other types: our column is cast to the reference's type (`TRY_CAST`): equal iff every
  non-null value casts, and the checksums agree, so a column we keep as text that DuckDB
  typed DATE is equal iff every value is the same date. Text is also tried through HUGEINT
  (DuckDB reads `0x1F` as a number) and, for dates and timestamps, parsed with the format
  DuckDB's sniffer chose (`%d/%m/%y`...). When our type is not text, the cast must be
  lossless for our values (cast back equal), so a rounding cast cannot make two different
  values look equal. If all that fails and the reference column is text (VARCHAR/JSON), the
  reference is cast to our type instead: we typed what the reference left as text.

Nested columns (struct, list, map on either side) are compared in Python: each value as
canonical JSON (keys sorted, null fields dropped, decimals as numbers, dates and timestamps
and ISO text of them spelt one way, JSON text parsed), as a multiset. So a STRUCT against a
MAP or JSON text of the same content, struct fields in another order, or a timestamp one
reader typed and the other kept as text, are equal values of another type.

A type difference with equal values is reported (`same-values-other-type`), not a failure.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

TEXT_TYPES = frozenset({"VARCHAR", "JSON"})
INTEGER_TYPES = frozenset(
    {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    }
)
MAX_LISTED = 4


@dataclass
class Comparison:
    outcome: str  # same | same-values-other-type | differs
    detail: str = ""
    type_notes: list[str] = field(default_factory=list)  # "col: ours T1, reference T2"
    problems: list[str] = field(default_factory=list)


def _short(value: Any, width: int = 48) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _names(names: list[str]) -> str:
    shown = ", ".join(_short(n, 32) for n in names[:MAX_LISTED])
    return f"[{shown}{', …' if len(names) > MAX_LISTED else ''}]"


def _listed(items: list[str]) -> str:
    more = f"; … {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return "; ".join(items[:MAX_LISTED]) + more


def _is_nested(t: pa.DataType) -> bool:
    return bool(pa.types.is_nested(t))


def _type_name(t: pa.DataType) -> str:
    """An Arrow type as DuckDB would name it: large/view variants and list item names aside."""
    if isinstance(t, pa.FixedSizeListType):
        return f"{_type_name(t.value_type)}[{t.list_size}]"
    if isinstance(t, pa.ListType | pa.LargeListType | pa.ListViewType | pa.LargeListViewType):
        return f"{_type_name(t.value_type)}[]"
    if isinstance(t, pa.MapType):
        return f"MAP({_type_name(t.key_type)}, {_type_name(t.item_type)})"
    if isinstance(t, pa.StructType):
        return "STRUCT(" + ", ".join(f"{f.name} {_type_name(f.type)}" for f in t) + ")"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "VARCHAR"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "BLOB"
    return str(t)


def compare(
    ref: pa.Table,
    ours: pa.Table,
    *,
    date_format: str | None = None,
    timestamp_format: str | None = None,
) -> Comparison:
    """Compare our table with the reference's; see the module docstring. The formats are the
    ones the reference's CSV sniffer used, for columns we keep as text."""
    result = Comparison("same")
    if ours.num_rows != ref.num_rows:
        result.problems.append(f"rows: ours {ours.num_rows}, reference {ref.num_rows}")
    ref_names, our_names = list(ref.column_names), list(ours.column_names)
    if len(ref_names) != len(our_names):
        result.problems.append(
            f"columns: ours {len(our_names)} {_names(our_names)}, "
            f"reference {len(ref_names)} {_names(ref_names)}"
        )
    elif ref_names != our_names:
        diffs = [
            f"#{i} ours {_short(o, 32)} reference {_short(r, 32)}"
            for i, (o, r) in enumerate(zip(our_names, ref_names, strict=True))
            if o != r
        ]
        result.problems.append(
            f"names differ in {len(diffs)} of {len(ref_names)}: {_listed(diffs)}"
        )
    if not result.problems:
        bad: list[str] = []
        nested = [
            i
            for i in range(ref.num_columns)
            if _is_nested(ref.schema.field(i).type) or _is_nested(ours.schema.field(i).type)
        ]
        scalar = [i for i in range(ref.num_columns) if i not in nested]
        if scalar:
            _compare_scalars(
                ref, ours, scalar, ref_names, result, bad, date_format, timestamp_format
            )
        for i in nested:
            _compare_nested(ref.column(i), ours.column(i), _short(ref_names[i], 32), result, bad)
        if bad:
            result.problems.append(
                f"values differ in {len(bad)} of {ref.num_columns} columns: {_listed(bad)}"
            )
    if result.problems:
        result.outcome = "differs"
        result.detail = "; ".join(result.problems)
    elif result.type_notes:
        result.outcome = "same-values-other-type"
        result.detail = "; ".join(result.type_notes)
    return result


# --- scalar columns, in DuckDB ----------------------------------------------------------------


class _Tables:
    """The scalar columns of both tables, registered as r and o with columns c0, c1, ..."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, ref: pa.Table, ours: pa.Table, columns: list[int]
    ) -> None:
        self.con = con
        names = [f"c{i}" for i in columns]
        con.register("r", ref.select(columns).rename_columns(names))
        con.register("o", ours.select(columns).rename_columns(names))
        ref_types = [str(t) for t in con.sql("SELECT * FROM r LIMIT 0").types]
        our_types = [str(t) for t in con.sql("SELECT * FROM o LIMIT 0").types]
        self.ref_types = dict(zip(columns, ref_types, strict=True))
        self.our_types = dict(zip(columns, our_types, strict=True))

    def one(self, query: str) -> tuple[Any, ...]:
        row = self.con.execute(query).fetchone()
        assert row is not None
        return tuple(row)

    def stats(self, table: str, columns: list[int]) -> dict[int, tuple[Any, Any]]:
        """(non-null count, sum of hashes) of several raw columns, in one scan."""
        if not columns:
            return {}
        exprs = ", ".join(f"count(c{i}), sum(hash(c{i}))" for i in columns)
        row = self.one(f"SELECT {exprs} FROM {table}")
        return {c: (row[2 * k], row[2 * k + 1]) for k, c in enumerate(columns)}

    def cast_stats(
        self, table: str, col: int, expr: str, lossless_back_to: str | None
    ) -> tuple[int, int, Any, int]:
        """(raw non-null, converted non-null, sum of hashes of the converted values, values
        whose conversion does not cast back to themselves) of `expr` over column `col`."""
        c = f"c{col}"
        lossy = (
            f"count(*) FILTER (WHERE {c} IS NOT NULL AND "
            f"TRY_CAST({expr} AS {lossless_back_to}) IS DISTINCT FROM {c})"
            if lossless_back_to
            else "0"
        )
        row = self.one(f"SELECT count({c}), count({expr}), sum(hash({expr})), {lossy} FROM {table}")
        return row[0], row[1], row[2], row[3]

    def examples(self, col: int, ours_expr: str) -> str:
        """A few values in one column and not the other (multiset difference)."""
        c = f"c{col}"
        try:
            only_ours = self.con.execute(
                f"SELECT {ours_expr} FROM o EXCEPT ALL SELECT {c} FROM r LIMIT 2"
            ).fetchall()
            only_ref = self.con.execute(
                f"SELECT {c} FROM r EXCEPT ALL SELECT {ours_expr} FROM o LIMIT 2"
            ).fetchall()
        except duckdb.Error:
            return ""
        parts = []
        if only_ours:
            parts.append("only ours: " + ", ".join(_short(v[0], 32) for v in only_ours))
        if only_ref:
            parts.append("only reference: " + ", ".join(_short(v[0], 32) for v in only_ref))
        return f" ({'; '.join(parts)})" if parts else ""


def _compare_scalars(
    ref: pa.Table,
    ours: pa.Table,
    columns: list[int],
    names: list[str],
    result: Comparison,
    bad: list[str],
    date_format: str | None,
    timestamp_format: str | None,
) -> None:
    with duckdb.connect() as con:
        tables = _Tables(con, ref, ours, columns)
        same_type = [i for i in columns if tables.ref_types[i] == tables.our_types[i]]
        ref_stats = tables.stats("r", columns)
        our_stats = tables.stats("o", same_type)
        for i in columns:
            name = _short(names[i], 32)
            rt, ot = tables.ref_types[i], tables.our_types[i]
            if i in our_stats:
                if our_stats[i] == ref_stats[i]:
                    continue
                if our_stats[i][0] != ref_stats[i][0]:
                    bad.append(
                        f"{name}: {our_stats[i][0]} non-null values, reference {ref_stats[i][0]}"
                    )
                else:
                    bad.append(name + tables.examples(i, f"c{i}"))
                continue
            types = f"ours {_short(ot, 40)}, reference {_short(rt, 40)}"
            how = _equal_other_types(tables, i, ref_stats[i], date_format, timestamp_format)
            if how is not None:
                result.type_notes.append(f"{name}: {types}" + (f" ({how})" if how else ""))
            else:
                bad.append(f"{name}{tables.examples(i, f'TRY_CAST(c{i} AS {rt})')} [{types}]")


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _equal_other_types(
    tables: _Tables,
    i: int,
    ref_stat: tuple[Any, Any],
    date_format: str | None,
    timestamp_format: str | None,
) -> str | None:
    """None if the values differ, else how they were found equal ("" for a plain cast)."""
    rt, ot = tables.ref_types[i], tables.our_types[i]
    c = f"c{i}"
    ours_text = ot in TEXT_TYPES
    tries: list[tuple[str, str]] = [(f"TRY_CAST({c} AS {rt})", "")]
    if ours_text:
        if rt in INTEGER_TYPES or (rt.startswith("DECIMAL(") and rt.endswith(",0)")):
            tries.append((f"TRY_CAST(TRY_CAST({c} AS HUGEINT) AS {rt})", "our text as HUGEINT"))
        if rt == "DATE" and date_format:
            tries.append(
                (
                    f"TRY_CAST(TRY_STRPTIME({c}, {_sql_text(date_format)}) AS DATE)",
                    f"our text parsed as the reference's {date_format}",
                )
            )
        if rt.startswith("TIMESTAMP") and timestamp_format:
            tries.append(
                (
                    f"TRY_CAST(TRY_STRPTIME({c}, {_sql_text(timestamp_format)}) AS {rt})",
                    f"our text parsed as the reference's {timestamp_format}",
                )
            )
    for expr, how in tries:
        try:
            raw, cast, digest, lossy = tables.cast_stats("o", i, expr, None if ours_text else ot)
        except duckdb.Error:
            continue
        if raw == cast == ref_stat[0] and digest == ref_stat[1] and lossy == 0:
            return how
    if rt in TEXT_TYPES:
        try:
            our_stat = tables.stats("o", [i])[i]
            raw, cast, digest, _ = tables.cast_stats("r", i, f"TRY_CAST({c} AS {ot})", None)
            if raw == cast == our_stat[0] and digest == our_stat[1]:
                return "reference text cast to our type"
        except duckdb.Error:
            pass
    return None


# --- nested columns, in Python ----------------------------------------------------------------


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): _canonical(v) for k, v in value if v is not None}  # a MAP
        return [_canonical(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str):
        return _canonical_text(value)
    return value


def _canonical_text(text: str) -> Any:
    """JSON text as its value, ISO dates and timestamps as one spelling (a reader may type
    them or keep the text)."""
    if text[:1] in ("[", "{"):
        try:
            return _canonical(json.loads(text))
        except ValueError:
            return text
    if 10 <= len(text) <= 35 and text[:4].isdigit() and text[4:5] == "-":
        try:
            return _canonical(
                dt.datetime.fromisoformat(text) if len(text) > 10 else dt.date.fromisoformat(text)
            )
        except ValueError:
            return text
    return text


def _key(value: Any) -> str:
    return json.dumps(_canonical(value), sort_keys=True, default=str)


def _first_difference(ours: list[str], ref: list[str]) -> str:
    """Where the first values only ours and only the reference's part, as canonical JSON."""
    if not ours or not ref:
        return f", e.g. {_short((ours or ref)[0], 60)}"
    a, b = ours[0], ref[0]
    at = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    start = max(0, at - 30)
    return (
        f", e.g. at character {at}: ours …{a[start : at + 30]!r}… reference "
        f"…{b[start : at + 30]!r}…"
    )


def _compare_nested(
    ref: pa.ChunkedArray, ours: pa.ChunkedArray, name: str, result: Comparison, bad: list[str]
) -> None:
    rt, ot = _type_name(ref.type), _type_name(ours.type)
    ref_values, our_values = ref.to_pylist(), ours.to_pylist()
    ref_nulls = sum(v is None for v in ref_values)
    our_nulls = sum(v is None for v in our_values)
    types = f"ours {_short(ot, 40)}, reference {_short(rt, 40)}"
    if ref_nulls != our_nulls:
        bad.append(
            f"{name}: {len(our_values) - our_nulls} non-null values, reference "
            f"{len(ref_values) - ref_nulls} [{types}]"
        )
        return
    ref_keys = Counter(_key(v) for v in ref_values if v is not None)
    our_keys = Counter(_key(v) for v in our_values if v is not None)
    if ref_keys != our_keys:
        only_ours = list((our_keys - ref_keys).elements())
        only_ref = list((ref_keys - our_keys).elements())
        bad.append(
            f"{name}: {len(only_ours)} values only ours, {len(only_ref)} only the "
            f"reference{_first_difference(only_ours, only_ref)} [{types}]"
        )
    elif rt != ot:
        result.type_notes.append(f"{name}: {types}")
