# Each target creates .venv when missing and installs what it needs, so these work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LINTED := src tests benchmarks $(wildcard examples) $(wildcard docs)

.PHONY: demo test bench lint install clean readme results

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch pinned exactly first: a looser spec would pull the newest CUDA build (GBs).
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bpttlab tour --out runs/tour

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_walk.py --out benchmarks/walk.md
	$(BIN)/python benchmarks/bench_probe.py --out benchmarks/probe.md
	$(BIN)/python benchmarks/bench_cliff.py --out benchmarks/cliff.md

readme: $(STAMP)
	$(BIN)/python docs/readme.py

results: $(STAMP)
	$(BIN)/python docs/results/compute.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
