# DreamBolt: `make demo` runs the main job on an embedded default, `make test` passes the tests.
# Both create .venv and install the pinned dependencies (requirements.lock) themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test lint demo bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check dreambolt tests scripts
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

demo: venv
	$(BIN)/dreambolt demo

bench: venv
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
