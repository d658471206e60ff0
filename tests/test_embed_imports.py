"""The embed stage stands on its own: importing it (every module of it) loads neither the S3
stage (aiobotocore, botocore) nor the format readers, the fetch stage, or DuckDB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dreambolt.embed

EMBED = Path(dreambolt.embed.__file__).parent
PACKAGE = EMBED.parent
FORBIDDEN = (
    "aiobotocore",
    "botocore",
    "duckdb",
    "dreambolt.fetch",
    "dreambolt.formats",
    "dreambolt.s3",
    "dreambolt.sources",
    "dreambolt.ingest",
    "dreambolt.write",
)

# The parent package is stood in for by an empty one, so that what is measured is what the
# embed modules import, whatever `dreambolt/__init__.py` imports eagerly or lazily.
PROBE = """
import importlib, json, sys, types
package = types.ModuleType("dreambolt")
package.__path__ = [sys.argv[1]]
sys.modules["dreambolt"] = package
for name in sys.argv[2:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_the_embed_stage_loads_no_s3_formats_fetch_or_duckdb() -> None:
    modules = ["dreambolt.embed"] + [
        f"dreambolt.embed.{path.stem}"
        for path in sorted(EMBED.glob("_*.py"))
        if path.stem != "__init__"
    ]
    assert "dreambolt.embed._openai" in modules and "dreambolt.embed._stage" in modules
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(PACKAGE), *modules],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(done.stdout)
    assert "dreambolt.embed._stage" in loaded and "openai" in loaded  # the probe did import
    wrong = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert wrong == []
