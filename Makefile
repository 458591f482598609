# aiayn: two commands do everything on a fresh clone.
#   make demo   create .venv, install, run the whole DVC pipeline on the offline demo corpus
#   make test   create/update .venv with dev extras (they include the bench peers), run
#               black --check, ruff and pytest
#   make bench  install the dev extras (peers included) and run bench/ side by side; BENCH_ARGS=--quick
#               (minutes), --full (adds WMT14-scale data stages), --only NAME, --threads N.
#               On a GPU machine, without installing anything: bash bench/gpu.sh
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# torch is installed first and pinned: the CPU wheel on a CPU machine. On a GPU machine use e.g.
#   make demo TORCH_SPEC="torch==2.4.1" (any build pip resolves for your CUDA).
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
DVC := $(VENV)/bin/dvc
CONSTRAINTS := requirements/constraints.txt
PIP_INSTALL := $(PIP) install -q -c $(CONSTRAINTS)
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: demo test lint format install install-dev install-bench bench constraints clean-venv help

help:
	@echo "make demo   # run the whole pipeline on the offline demo corpus (dvc repro)"
	@echo "make test   # black --check, ruff, pytest"
	@echo "make bench  # side-by-side benchmarks (BENCH_ARGS=--quick for a short run)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP_INSTALL) -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP_INSTALL) -e ".[dev]"
	@touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
install-bench: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	@test -d .dvc || (echo "error: .dvc/ is missing; run make demo from the repository root" >&2; exit 1)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(DVC) repro
	@echo
	@$(PY) -c "from aiayn.score import print_summary; print_summary('reports/metrics.json')"
	@echo
	@echo "Metrics:         reports/metrics.json   (dvc metrics show; after a change: dvc metrics diff)"
	@echo "Data report:     reports/data.md"
	@echo "Training curves: dvc plots show         (reports/train/)"

test: $(VENV)/.installed-dev
	$(VENV)/bin/black --check .
	$(VENV)/bin/ruff check .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/black --check .
	$(VENV)/bin/ruff check .

format: $(VENV)/.installed-dev
	$(VENV)/bin/black .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.installed-dev
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m bench $(BENCH_ARGS)

# Re-pin every dependency (except torch) after editing pyproject.toml; needs network to PyPI.
constraints: | $(PY)
	$(PIP) install -q uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra bench --universal \
	  --python-version 3.11 --no-header --no-annotate -q -o $(CONSTRAINTS).tmp
	{ sed -n '1,3p' $(CONSTRAINTS); grep -vE '^(torch|triton|cuda-|nvidia-(c|n)|#)' $(CONSTRAINTS).tmp; } \
	  > $(CONSTRAINTS).new && rm $(CONSTRAINTS).tmp && mv $(CONSTRAINTS).new $(CONSTRAINTS)

clean-venv:
	rm -rf $(VENV)
