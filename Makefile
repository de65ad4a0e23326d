# `make run` and `make test` create .venv on first use and install oplab with its pinned dependencies:
# every package at the version requirements.lock pins (pyproject's dependencies and its test extra,
# resolved by pip-tools' pip-compile for Linux x86_64, Python 3.11), then oplab itself without
# dependencies. pyproject.toml keeps the ranges for library users.
# Regenerate the lock after changing pyproject's dependencies: `make lock` (keep torch==2.14.1 with
# torchvision==0.29.1), or by hand:
#   .venv/bin/pip install pip-tools
#   .venv/bin/pip-compile --extra test --strip-extras --no-emit-index-url --no-emit-find-links \
#       -o requirements.lock pyproject.toml
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
NEED_GB := 6

.PHONY: run test lint bench report clean dry-run lock

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c "import shutil, sys; free = shutil.disk_usage('.').free / 2**30; \
	sys.exit(free < $(NEED_GB) and f'make: .venv needs about $(NEED_GB) GB of disk (torch 2.14.1 with its CUDA \
	libraries, though it runs on the CPU too); {free:.1f} GB free here: free some space, then run make again')"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

lock: $(STAMP)  ## re-resolve requirements.lock from pyproject.toml (pip-tools)
	$(PY) -m pip install --quiet pip-tools
	$(VENV)/bin/pip-compile --quiet --extra test --strip-extras --no-emit-index-url --no-emit-find-links \
		-o $(LOCK) pyproject.toml

run: $(STAMP)  ## run every study at the quick budget and write results/
	$(PY) run_all.py --replicate $(ARGS)

report: $(STAMP)  ## rebuild results/ from stored records, no training
	$(PY) run_all.py --report-only --replicate

lint: $(STAMP)
	$(VENV)/bin/ruff check oplab studies tests run_all.py

# the suite runs on TEST_JOBS processes (pytest-xdist; 0: in this process): each test goes to the next free
# worker, except that the tests of an xdist_group (e.g. a module sharing one trained fixture) go together.
# A test that compares a --jobs 1 run with a worker pool's runs the --jobs 1 side in a fresh process
# (tests/fresh.py), as a user's command does: in a worker that earlier tests used, the last float bit can move.
TEST_JOBS ?= 2

test: lint  ## lint, then the test suite (unit tests, a smoke run of every study), on 2 processes (TEST_JOBS=0: one)
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadgroup; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$status

dry-run: $(STAMP)  ## every arm of every study's full budget trains 2 updates on fake data of the real shapes
	OPLAB_FULL_DRY_RUN=1 $(PY) -m pytest -q tests/test_full_dry_run.py

bench: $(STAMP)  ## speed ratios (oplab vs a plain PyTorch loop, BN vs WN, ...)
	$(PY) -m pytest tests/benchmarks --benchmark-only -p no:cacheprovider --override-ini addopts= -s

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
