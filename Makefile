# `make run` and `make test` work on a fresh machine with Python 3.11+ and make only.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/attnpaths markov --preset 4paths --out results/markov

# one pytest worker per core (pytest-xdist); a test module's tests stay on one worker, so a module's shared
# fixtures (e.g. the one-shot quick run) are built once. `pytest -n 0` runs in one process.
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n auto --dist loadscope

# the site (docs/, mkdocs.yml) into site/; --strict turns every warning into an error. The docs extra comes
# with the test extra, which tests/test_docs.py needs for the same build.
docs: $(VENV)/.installed-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/solver.py

clean:
	rm -rf $(VENV) results site
