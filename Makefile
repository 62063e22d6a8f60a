# Two commands for a fresh clone: `make demo` and `make test`. Both create .venv and install
# what they need first. `make check` is what CI runs: lint, format, types, then the tests.
PYTHON ?= python3
# `make demo PORT=5050 HOST=0.0.0.0` when 5000 is taken (macOS AirPlay uses it) or to share it.
PORT ?= 5000
HOST ?= 127.0.0.1
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/checkin demo --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict

check: lint test

clean:
	rm -rf $(VENV) instance/demo.sqlite3* test-artifacts
