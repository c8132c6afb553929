# Everything a fresh machine needs: `make demo` runs the pipeline, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export TELEMETRY_HOME ?= $(CURDIR)/.telemetry

.PHONY: install demo test dev clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/telemetry demo

test: $(INSTALLED)
	$(BIN)/pytest

dev: $(INSTALLED)
	$(BIN)/telemetry ui

clean:
	rm -rf $(TELEMETRY_HOME)
