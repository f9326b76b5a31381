# mailslot — every target sets up its own .venv; nothing needs installing by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint bench chaos demo clean check-tools

check-tools:
	@command -v git  >/dev/null || { echo "mailslot needs git on PATH (apt-get install git)"  >&2; exit 1; }
	@command -v tmux >/dev/null || { echo "mailslot needs tmux on PATH (apt-get install tmux)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "mailslot needs Python >= 3.11" >&2; exit 1; }

$(STAMP): pyproject.toml | check-tools
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --config-settings editable_mode=compat -e '.[test,lint]'
	touch $(STAMP)

test: check-tools $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check mailslot tests bench examples
	$(BIN)/mypy

bench: check-tools $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

chaos: check-tools $(STAMP)
	MAILSLOT_CHAOS=full $(BIN)/pytest -q tests/chaos

demo: check-tools $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python examples/demo.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
