# `make run` and `make test` create .venv on first use and install oplab with its pinned dependencies.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench report clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)  ## run every study at the quick budget and write results/
	$(PY) run_all.py --replicate $(ARGS)

report: $(STAMP)  ## rebuild results/ from stored records, no training
	$(PY) run_all.py --report-only --replicate

lint: $(STAMP)
	$(VENV)/bin/ruff check oplab studies tests run_all.py

test: lint  ## lint, then the test suite (unit tests, a smoke run of every study)
	$(PY) -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$status

bench: $(STAMP)  ## speed ratios (oplab vs a plain PyTorch loop, BN vs WN, ...)
	$(PY) -m pytest tests/benchmarks --benchmark-only -p no:cacheprovider --override-ini addopts=

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
