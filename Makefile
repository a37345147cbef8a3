# CAM report generator. `make site` and `make test` are all a new user needs (see README.md).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AXE := tests/node_modules/axe-core/axe.min.js
VNU := tests/node_modules/vnu-jar/build/dist/vnu.jar
CHROMIUM ?= chromium
SOURCE ?=
PERSONAL ?=
UNRELATED ?=
ARGS ?=
OXFORD ?=
OXFORD_PER_BREED ?=

data_args = $(if $(SOURCE),--source "$(SOURCE)") $(if $(PERSONAL),--personal "$(PERSONAL)") $(if $(UNRELATED),--unrelated "$(UNRELATED)")

.PHONY: setup data weights site breeds test lint serve bench pdf messages clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

# The accessibility tests inject axe-core (npm) into the pages; without npm they are skipped with a reason.
$(AXE):
	-command -v npm >/dev/null && npm install --silent --no-save --no-audit --no-fund --prefix tests axe-core@4.14.1

# The W3C's Nu HTML Checker (npm's vnu-jar), run with Debian's Java (apt-get install default-jre-headless); its
# install script, which would download a Java of its own, is skipped. Without npm or Java the test skips with a reason.
$(VNU):
	-command -v npm >/dev/null && npm install --silent --no-save --no-audit --no-fund --ignore-scripts --prefix tests \
		axe-core@4.14.1 vnu-jar@26.9.27

# Downloads cats_and_dogs_filtered.zip (about 65 MB) unless SOURCE names a local copy of the same layout. OXFORD=1
# also builds data/oxford/ (OXFORD_PER_BREED photos per breed, 10 by default) from the Oxford-IIIT Pet archives.
oxford_args = $(if $(OXFORD),--oxford $(if $(OXFORD_PER_BREED),--oxford-per-breed "$(OXFORD_PER_BREED)"))

data: $(STAMP)
	$(BIN)/python -m generator data $(data_args) $(oxford_args)

weights: $(STAMP)
	$(BIN)/python -m generator weights

site: $(STAMP)
	$(BIN)/python -m generator site $(data_args) $(ARGS)

# The 37-breed example (K = 37): links the Oxford-IIIT Pet photos of ../shared/datasets/personal into data/breeds/,
# split seeded per breed; then `make site ARGS="--data-dir data/breeds --eval-sets test --roles test=test
# --site-dir site-breeds"` builds its site.
BREEDS ?= ../shared/datasets/personal
breeds: $(STAMP)
	$(BIN)/python -m generator breeds --source "$(BREEDS)"

# Where bf16 autocast is on (a CPU with AVX512-BF16 or AMX, or a bf16 GPU), the numerics tests run a second time
# with it forced off (CAM_BF16=0), so that both paths are tested; elsewhere the first pass already ran float32.
BF16_ON := from generator.config import Settings; from generator.model.runtime import choose_runtime as c; \
	raise SystemExit(0 if c(Settings()).autocast else 1)

test: $(STAMP) $(AXE) $(VNU)
	$(BIN)/python -m pytest -q tests
	@if $(BIN)/python -c '$(BF16_ON)'; then \
		echo "bf16 autocast is on here: the numerics tests again, in float32 (CAM_BF16=0)"; \
		CAM_BF16=0 $(BIN)/python -m pytest -q -m numerics tests; \
	else \
		echo "no float32 pass needed: bf16 autocast is off here (no AVX512-BF16 or AMX, no bf16 GPU, or CAM_BF16=0)," \
			"so every test above ran in float32"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check generator tests bench

serve:
	@echo "Serving site/ on http://127.0.0.1:8000/ (Ctrl-C stops)"
	cd site && ../$(BIN)/python -m http.server 8000 --bind 127.0.0.1

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

# The report as an A4 PDF, printed by headless Chromium (apt-get install chromium) from the built site.
pdf:
	@test -f site/report.html || { echo "error: site/report.html is missing: run make site first." >&2; exit 2; }
	@command -v $(CHROMIUM) >/dev/null || { echo "error: $(CHROMIUM) is not installed: apt-get install chromium, or set CHROMIUM=<path>." >&2; exit 2; }
	$(CHROMIUM) --headless --no-sandbox --disable-gpu --disable-background-networking --no-pdf-header-footer \
		--run-all-compositor-stages-before-draw --virtual-time-budget=5000 \
		--print-to-pdf=site/report.pdf "file://$(CURDIR)/site/report.html" 2>/dev/null
	@echo "wrote site/report.pdf"

# After changing text in generator/ or templates/: update the catalogs, then translate what is new.
messages: $(STAMP)
	$(BIN)/pybabel -q extract -F templates/locale/babel.cfg -k N_ -k n_:1,2 --add-location=file --sort-by-file \
		--project=cam-report -o templates/locale/messages.pot generator templates
	$(BIN)/pybabel -q update --ignore-obsolete -i templates/locale/messages.pot -d templates/locale
	rm templates/locale/messages.pot

# Deletes site/ (and .site.new, .site.old, .site.lock) and .cache/ only if this tool wrote them: a folder holding
# anything else is named and left alone. Runs with the system's python3 when there is no virtual environment.
clean:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PY)) -m generator clean
	rm -rf .pytest_cache tests/artifacts
