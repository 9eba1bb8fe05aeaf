# `make experiment` and `make test` set everything up on a fresh machine (idempotent) and run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup experiment test lint benchmarks clean-caches

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

experiment: setup
	$(PY) -m experiments.run $(ARGS)

test: setup
	$(PY) -m pytest $(ARGS)

lint: setup
	$(PY) -m ruff check movielens experiments benchmarks tests

benchmarks: setup
	for b in data retrieval movie_length rating bert4rec; do $(PY) -m benchmarks.$$b || exit 1; done

clean-caches:
	rm -rf datasets/processed datasets/registry datasets/tfds saved_models/*/ reports/
