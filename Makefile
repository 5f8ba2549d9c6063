# Quick start: `make demo` runs the whole pipeline on the embedded demo data; `make test` is the CI gate.
# Both create .venv on first use and install the pinned requirements and the package into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all

.PHONY: demo test test-slurm lint clean-demo

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slurm: $(STAMP)
	bash ci/test-slurm.sh

lint: $(STAMP)
	$(BIN)/snakemake --lint

clean-demo:
	rm -rf results/demo logs/demo benchmarks/demo data/demo
