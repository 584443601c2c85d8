# Every target creates .venv and installs the project first when needed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install test test-fast demo serve bench style quality clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

test: install  ## the whole suite (about 10 minutes on 2 cores)
	$(PY) -m pytest

test-fast: install  ## everything but the tests that train models in subprocesses
	$(PY) -m pytest -m "not slow"

demo: install  ## embedded service + small base model + two update jobs
	$(VENV)/bin/neuroplast demo

serve: install  ## API + one embedded worker on 127.0.0.1:8000, data in .neuroplast/
	$(VENV)/bin/neuroplast serve

bench: install  ## benchmarks; writes docs/benchmarks.md
	$(PY) -m bench

style: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

quality: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .demo .bench .pytest_cache .ruff_cache .mypy_cache
