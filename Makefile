# Each target creates .venv when missing and installs what it needs, so these work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Where torch comes from: empty = pip's own configuration. On Linux, PyPI's torch is the CUDA
# build (GBs); TORCH_INDEX=https://download.pytorch.org/whl/cpu gets the CPU build instead.
TORCH_INDEX ?=
LINTED := src tests benchmarks $(wildcard examples) $(wildcard docs)

.PHONY: demo test test-other-cpu bench lint install clean readme results claims campaign chromium

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch pinned exactly, first and as a constraint on every extra after it: a looser spec
	# would pull the newest CUDA build (GBs).
	$(BIN)/python -m pip install -q -c constraints.txt $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bpttlab tour --out runs/tour

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

# tests/e2e/test_report.py drives Debian's chromium; Playwright never downloads a browser.
chromium:
	command -v chromium >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q chromium)

test: lint chromium
	$(BIN)/python -m pytest -q

# The conclusions drawn from training, again with the vector code another CPU would run: a
# verdict that depends on the rounding fails here, on the developer's own machine.
test-other-cpu: $(STAMP)
	ATEN_CPU_CAPABILITY=default $(BIN)/python -m pytest -q -m conclusions

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_walk.py --out benchmarks/walk.md
	$(BIN)/python benchmarks/bench_probe.py --out benchmarks/probe.md
	$(BIN)/python benchmarks/bench_cliff.py --out benchmarks/cliff.md
	$(BIN)/python benchmarks/bench_startup.py --out benchmarks/startup.md
	$(BIN)/python benchmarks/bench_ray.py --out benchmarks/ray.md

readme: $(STAMP)
	$(BIN)/python docs/readme.py

results: $(STAMP)
	$(BIN)/python docs/results/compute.py

claims: $(STAMP)
	$(BIN)/bpttlab claims

# the long-budget campaign (docs/results/campaign.py): ARGS="--cells adding:100 ..." picks cells,
# ARGS="--executor ray --address auto" runs it on a cluster; resumable
campaign: $(STAMP)
	$(BIN)/python docs/results/campaign.py $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
