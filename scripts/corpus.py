"""Run the whole real-world corpus (`make corpus`): every data file shipped inside the pinned
packages, and those datasets as other tools write them (`written:*`, generated on first use),
loaded by DreamBolt and by the reference reader, compared (see tests/corpus/).

Prints one line per file (outcome, file id, detail) and a summary; exits 1 if any file differs,
crashes or hangs without a reason in tests/corpus/known.py, or is refused without the message
naming it, and 2 if a source package is missing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from fnmatch import fnmatchcase
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from corpus.collect import collect, sample
from corpus.run import DEFAULT_TIMEOUT, OUTCOMES, Result, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 2,
        help="worker processes (default: one per core)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds per file before it counts as a hang (default 30)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="GLOB",
        help="run only files whose id matches (repeatable), "
        "e.g. 'statsmodels:*', 'written:pandas/*' or '*.parquet'",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=1,
        metavar="N",
        help="the test's deterministic sample: about 1 file in N (default: all)",
    )
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="print only files whose outcome is not 'same'"
    )
    args = parser.parse_args()

    corpus = collect()
    for problem in corpus.problems:
        print(f"MISSING SOURCE: {problem}", file=sys.stderr)
    files = sample(corpus.files, args.sample)
    if args.only:
        files = [f for f in files if any(fnmatchcase(f.id, p) for p in args.only)]
    print(
        f"{len(files)} files from {', '.join(sorted({f'{f.dist} {f.version}' for f in files}))}",
        flush=True,
    )

    def show(result: Result) -> None:
        if not args.quiet or result.outcome != "same":
            print(result.line(), flush=True)

    started = time.monotonic()
    results = run(files, jobs=args.jobs, timeout=args.timeout, on_result=show)
    elapsed = time.monotonic() - started

    counts = Counter(r.outcome for r in results)
    by_format = Counter(r.file.fmt for r in results)
    failed = [r for r in results if r.failed]
    print()
    print(
        f"{len(results)} files in {elapsed:.1f} s: "
        + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o])
    )
    print("by format: " + ", ".join(f"{n} {fmt}" for fmt, n in sorted(by_format.items())))
    known = sum(1 for r in results if r.known is not None and r.outcome != "same")
    if known:
        print(f"{known} differences with a documented reason (tests/corpus/known.py)")
    if failed:
        print(
            f"FAILED: {len(failed)} files differ, crash, hang or are refused without "
            "naming the file:"
        )
        for r in sorted(failed, key=lambda r: r.file.id):
            print("  " + r.line())
    if corpus.problems:
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
