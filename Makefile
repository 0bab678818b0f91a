# Two entry points: `make demo` (the main job on the embedded default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,all,ultralytics]"
	touch $(STAMP)

install: $(STAMP)

# ResNet-20 vs SE- vs ECA-ResNet-20 on the embedded digits (about a minute on 2 CPU cores); runs in runs/demo.
demo: $(STAMP)
	$(BIN)/attnlab demo

# Lint (ruff check + format check, config in pyproject.toml), then the test suite.
test: lint
	$(BIN)/python -m pytest -q -n 2 tests

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV)
