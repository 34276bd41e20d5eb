# The two commands: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch's idle OpenMP threads spin and starve the data workers on small machines
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test lint typecheck conformance bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# the CPU build of torch first, so pip never pulls a CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,torch]"
	# compile the numba kernels into their on-disk cache, so no first batch pays for it
	$(PY) -m gunpowder.warmup -q
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/cremi/demo.py

test: $(STAMP)
	$(VENV)/bin/ruff check gunpowder tests examples benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest -p no:cacheprovider tests
	$(PY) -m pytest -p no:cacheprovider --doctest-modules gunpowder

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# gunpowder 1.x's own test suite against this library (needs ../shared/conformance)
conformance: $(STAMP)
	../shared/conformance/run.sh $(PY)

lint: $(STAMP)
	$(VENV)/bin/ruff check gunpowder tests examples benchmarks

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) demo build *.egg-info
