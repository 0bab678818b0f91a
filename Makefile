# Two entry points: `make demo` (the main job on the embedded default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,onnx,timm]"
	touch $(STAMP)

install: $(STAMP)

# ResNet-20 vs SE- vs ECA-ResNet-20 on the embedded digits (about a minute on 2 CPU cores); runs in runs/demo.
demo: $(STAMP)
	$(BIN)/attnlab demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 tests

clean:
	rm -rf $(VENV)
