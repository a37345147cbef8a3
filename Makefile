# CAM report generator. `make site` and `make test` are all a new user needs (see README.md).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCE ?=
PERSONAL ?=
UNRELATED ?=
DOWNLOAD ?=
ARGS ?=

data_args = $(if $(SOURCE),--source "$(SOURCE)") $(if $(PERSONAL),--personal "$(PERSONAL)") $(if $(UNRELATED),--unrelated "$(UNRELATED)")

.PHONY: setup data weights site test lint serve bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

data: $(STAMP)
	$(BIN)/python -m generator data $(data_args) $(if $(SOURCE),,--download)

weights: $(STAMP)
	$(BIN)/python -m generator weights

site: $(STAMP)
	$(BIN)/python -m generator site $(data_args) $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check generator tests

serve:
	@echo "Serving site/ on http://127.0.0.1:8000/ (Ctrl-C stops)"
	cd site && ../$(BIN)/python -m http.server 8000 --bind 127.0.0.1

bench: $(STAMP)
	$(BIN)/python -m generator.bench $(ARGS)

clean:
	rm -rf site .site.new .site.old data/.cache .pytest_cache tests/artifacts
