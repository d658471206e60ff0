#!/usr/bin/env python3
"""Embedding throughput against the fake OpenAI server, next to (batches / concurrency) x latency.

    python scripts/bench_embed.py [--texts 20000] [--latency-ms 50] [--concurrency 4]
                                  [--dim 1536] [--repeat 5] [--json]

The fake server (tests/fake_openai.py) runs as a separate process, so its work does not share
our GIL, and answers every request after a fixed latency. Each run embeds the same distinct short
texts with no cache through `embed_texts` (hashing, token counting, batching, HTTP, decoding,
assembling the column). The ideal is what the requests alone need with `concurrency` of them
always in flight: batches / concurrency x latency; `ratio` is the best run over it (1.0 is
perfect), and the bound in whole rounds, ceil(batches / concurrency) x latency, is given too.

The same runs with zero latency give the processing floor: the CPU time of both ends for the
payload (at 1,536 dimensions a 2,048-text response is ~17 MB of base64 JSON, which the server
encodes and we decode). On two shared cores that floor, not the latency, bounds short requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreambolt.embed import Embedder, embed_texts, make_embedder  # noqa: E402
from dreambolt.embed._tokens import default_counter  # noqa: E402

API_KEY = "sk-bench-0123456789abcdef"


def start_server(latency_ms: float, dim: int) -> tuple[subprocess.Popen[bytes], str]:
    port_file = Path(tempfile.mkdtemp(prefix="bench-embed-")) / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "fake_openai.py"),
            "--port-file",
            str(port_file),
            "--latency-ms",
            str(latency_ms),
            "--dim",
            str(dim),
            "--api-key",
            API_KEY,
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the fake OpenAI server did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}"


def admin(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{url}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.load(response)
    return result


async def timed_runs(embedder: Embedder, texts: list[str], repeat: int) -> tuple[list[float], int]:
    walls: list[float] = []
    requests = 0
    for _ in range(repeat):
        started = time.perf_counter()
        result, stats = await embed_texts(texts, embedder)
        walls.append(time.perf_counter() - started)
        assert result.vectors.shape == (len(texts), embedder.dim)
        requests = stats.requests
    return walls, requests


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    texts = [f"support ticket {i}: printer on floor {i % 13} jams again" for i in range(args.texts)]
    default_counter()  # load cl100k_base once, as a long-running ingest would have
    model = "text-embedding-3-small" if args.dim == 1536 else "openai:bench-embedding"
    embedder = make_embedder(
        model, base_url=f"{url}/v1", api_key=API_KEY, concurrency=args.concurrency
    )
    try:
        await embed_texts(["warm up the connection"], embedder)
        admin(url, "/_fake/config", {"latency": 0.0})
        floor, _ = await timed_runs(embedder, texts, args.repeat)
        admin(url, "/_fake/config", {"latency": args.latency_ms / 1000})
        walls, batches = await timed_runs(embedder, texts, args.repeat)
    finally:
        await embedder.aclose()
    seen = admin(url, "/_fake/stats")
    latency = args.latency_ms / 1000
    ideal = batches / args.concurrency * latency
    rounds = math.ceil(batches / args.concurrency) * latency
    best = min(walls)
    return {
        "texts": args.texts,
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "dim": args.dim,
        "batches": batches,
        "max_in_flight": seen["max_in_flight"],
        "tokenizer": seen["tokenizer"],
        "wall_s": [round(w, 4) for w in walls],
        "best_s": round(best, 4),
        "median_s": round(statistics.median(walls), 4),
        "ideal_s": round(ideal, 4),
        "ideal_whole_rounds_s": round(rounds, 4),
        "ratio": round(best / ideal, 3) if ideal else None,
        "ratio_median": round(statistics.median(walls) / ideal, 3) if ideal else None,
        "ratio_whole_rounds": round(best / rounds, 3) if rounds else None,
        "floor_best_s": round(min(floor), 4),
        "floor_median_s": round(statistics.median(floor), 4),
        "texts_per_s": round(args.texts / best),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    proc, url = start_server(args.latency_ms, args.dim)
    try:
        out = asyncio.run(run(args, url))
    finally:
        proc.terminate()
        proc.wait(10)
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"{out['texts']} texts, {out['batches']} requests, concurrency {out['concurrency']}, "
        f"{out['latency_ms']:g} ms per request, dim {out['dim']} ({out['tokenizer']} tokens)"
    )
    print(
        f"wall: best {out['best_s']:.3f} s, median {out['median_s']:.3f} s "
        f"(runs: {', '.join(f'{w:.3f}' for w in out['wall_s'])})"
    )
    if out["ratio"] is not None:
        print(
            f"ideal (batches / concurrency x latency): {out['ideal_s']:.3f} s -> ratio "
            f"{out['ratio']:.2f} (median {out['ratio_median']:.2f})"
        )
        print(
            f"whole rounds (ceil(batches / concurrency) x latency): "
            f"{out['ideal_whole_rounds_s']:.3f} s -> ratio {out['ratio_whole_rounds']:.2f}"
        )
    print(
        f"processing floor (same runs, zero latency): best {out['floor_best_s']:.3f} s, "
        f"median {out['floor_median_s']:.3f} s"
    )
    print(
        f"max requests in flight at the server: {out['max_in_flight']}; "
        f"{out['texts_per_s']} texts/s"
    )


if __name__ == "__main__":
    main()
