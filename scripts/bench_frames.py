"""The benchmark's tables: deterministic rows (hashes of the row number, no random state).

One function per column mix, each `(start, rows) -> polars DataFrame` for rows
`start .. start+rows`, so any object can be written in batches and regenerated identically:

- `mixed`: ids, integers, floats, short categories, three-word text, UTC timestamps, booleans
  (the small files and the 1 GiB objects);
- `numeric`: integers and floats only, mostly incompressible;
- `strings`: long, varied, mostly-unique strings beside low-cardinality ones;
- `quoted`: CSV whose fields hold commas, double quotes and line breaks, so quoting is real;
- `wide`: 200 columns of integers, floats and short strings;
- `narrow`: 5 columns.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

__all__ = ["FRAMES", "Frame"]

Frame = Callable[[int, int], pl.DataFrame]
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "amber",
    "basalt",
    "cobalt",
    "dune",
    "ember",
    "fjord",
    "granite",
    "harbor",
    "iris",
    "jade",
    "kelp",
    "lagoon",
    "marble",
    "nectar",
    "onyx",
    "pebble",
    "quartz",
    "ridge",
    "saffron",
    "timber",
    "umber",
    "velvet",
    "willow",
    "yarrow",
    "zephyr",
    "anchor",
    "beacon",
    "canyon",
    "drift",
    "estuary",
    "falcon",
    "glacier",
    "heron",
    "inlet",
    "jasper",
]
CITIES = [
    "Paris,Lyon",
    "Berlin",
    "New York, NY",
    "Kyoto",
    "Lagos",
    "Lima",
    "Oslo",
    "Austin, TX",
    "Porto",
    "Quito",
]
YEAR_US = 365 * 86_400 * 10**6


def _index(start: int, rows: int) -> pl.Expr:
    return pl.int_range(start, start + rows, dtype=pl.UInt64)


def _pick(h: pl.Expr, values: list[str] | tuple[str, ...]) -> pl.Expr:
    return (h % len(values)).replace_strict(dict(enumerate(values)), return_dtype=pl.String)


def _ts(h: pl.Expr) -> pl.Expr:
    base = pl.lit(1_700_000_000 * 10**6, dtype=pl.Int64)
    return (base + (h % YEAR_US).cast(pl.Int64)).cast(pl.Datetime("us", "UTC"))


def mixed(start: int, rows: int) -> pl.DataFrame:
    i = _index(start, rows)
    return pl.select(
        id=i.cast(pl.Int64),
        user_id=(i.hash(1) % 1_000_000).cast(pl.Int32),
        amount=(i.hash(2) % 10_000_000).cast(pl.Float64) / 100,
        score=(i.hash(3) % 1_000_000_007).cast(pl.Float64) / 1_000_000_007,
        quantity=(i.hash(4) % 100).cast(pl.Int16),
        category=pl.format("cat_{}", i.hash(5) % 40),
        comment=pl.concat_str([_pick(i.hash(s), WORDS[:18]) for s in (6, 7, 8)], separator=" "),
        ts=_ts(i.hash(9)),
        active=i.hash(10) % 2 == 0,
    )


def numeric(start: int, rows: int) -> pl.DataFrame:
    i = _index(start, rows)
    return pl.select(
        id=i.cast(pl.Int64),
        a=(i.hash(1) % 1_000_000_000_000).cast(pl.Int64),
        b=(i.hash(2) % 1_000_000).cast(pl.Int64),
        c=(i.hash(3) % 50_000).cast(pl.Int32),
        d=(i.hash(4) % 1000).cast(pl.Int16),
        x=(i.hash(5) % 1_000_000_007).cast(pl.Float64) / 1_000_000_007,
        y=(i.hash(6) % 10_000_000).cast(pl.Float64) / 100,
        z=(i.hash(7) % 2_000_000).cast(pl.Float64) - 1_000_000.0,
        w=(i.hash(8) % 1_000_003).cast(pl.Float32) / 7,
        t=(i.hash(9) % YEAR_US).cast(pl.Int64),
    )


def _sentence(i: pl.Expr, seed: int) -> pl.Expr:
    """3 to 9 words from 64, then a long number: 30-110 characters, almost never repeated."""
    words = [_pick(i.hash(seed + k), WORDS) for k in range(3)]
    more = pl.concat_str([_pick(i.hash(seed + k), WORDS) for k in range(3, 9)], separator=" ")
    cut = (i.hash(seed + 9) % 48).cast(pl.Int64)
    tail = pl.when(i.hash(seed + 10) % 4 == 0).then(pl.lit("")).otherwise(more.str.head(cut))
    return pl.concat_str([*words, tail, i.hash(seed + 11).cast(pl.String)], separator=" ")


def strings(start: int, rows: int) -> pl.DataFrame:
    i = _index(start, rows)
    return pl.select(
        id=i.cast(pl.Int64),
        title=_sentence(i, 100),
        body=_sentence(i, 200),
        email=pl.format("user{}@{}.example.com", i.hash(1) % 10**9, _pick(i.hash(2), WORDS)),
        url=pl.format("https://{}.org/{}/{}", _pick(i.hash(3), WORDS), i.hash(4), i.hash(5) % 97),
        category=pl.format("cat_{}", i.hash(6) % 40),
        country=_pick(i.hash(7), ("FR", "DE", "US", "JP", "NG", "PE", "NO", "PT", "EC", "IN")),
        status=_pick(i.hash(8), ("new", "open", "pending", "closed", "void")),
        amount=(i.hash(9) % 10_000_000).cast(pl.Float64) / 100,
    )


def quoted(start: int, rows: int) -> pl.DataFrame:
    """Every row has a field with a comma; a third have double quotes, one in eight a newline."""
    i = _index(start, rows)
    first, last = _pick(i.hash(1), WORDS).str.to_titlecase(), _pick(i.hash(2), WORDS)
    said = pl.format('{} said "{}", then left', first, _pick(i.hash(3), WORDS))
    note = _sentence(i, 300)
    return pl.select(
        id=i.cast(pl.Int64),
        name=pl.format("{}, {}", last.str.to_titlecase(), first),
        city=_pick(i.hash(4), CITIES),
        remark=pl.when(i.hash(5) % 3 == 0).then(said).otherwise(note),
        note=pl.when(i.hash(6) % 8 == 0).then(pl.format("line one\nline two: {}", note)),
        amount=(i.hash(7) % 10_000_000).cast(pl.Float64) / 100,
        quantity=(i.hash(8) % 100).cast(pl.Int16),
        ts=_ts(i.hash(9)),
    )


def wide(start: int, rows: int) -> pl.DataFrame:
    """id and 199 columns cycling integer, float, short string."""
    i = _index(start, rows)
    cols: dict[str, pl.Expr] = {"id": i.cast(pl.Int64)}
    for n in range(1, 200):
        h = i.hash(1000 + n)
        kind = n % 3
        if kind == 0:
            cols[f"c{n:03d}"] = (h % 100_000).cast(pl.Int64)
        elif kind == 1:
            cols[f"c{n:03d}"] = (h % 1_000_000).cast(pl.Float64) / 1000
        else:
            cols[f"c{n:03d}"] = _pick(h, WORDS[:26])
    return pl.select([expr.alias(name) for name, expr in cols.items()])


def narrow(start: int, rows: int) -> pl.DataFrame:
    i = _index(start, rows)
    return pl.select(
        id=i.cast(pl.Int64),
        value=(i.hash(1) % 1_000_000).cast(pl.Int64),
        price=(i.hash(2) % 100_000).cast(pl.Float64) / 100,
        tag=_pick(i.hash(3), WORDS[:18]),
        ok=i.hash(4) % 2 == 0,
    )


FRAMES: dict[str, Frame] = {
    "mixed": mixed,
    "numeric": numeric,
    "strings": strings,
    "quoted": quoted,
    "wide": wide,
    "narrow": narrow,
}
