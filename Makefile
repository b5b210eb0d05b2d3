# `make run` and `make test` are all a fresh Linux machine with Python 3.11 and git needs.
PYTHON := $(shell command -v python3.11 || command -v python3)
VENV := .venv
PYTEST_ARGS ?=

.PHONY: run test lint clean chromium

run: $(VENV)/.installed
	$(VENV)/bin/python -m eocortex_web.launcher run

test: $(VENV)/.installed chromium
	$(VENV)/bin/python -m eocortex_web.launcher test $(PYTEST_ARGS)

# The browser tests drive Debian's chromium (never a downloaded browser); installed when we may.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "make: the browser tests need Debian's chromium: sudo apt-get install chromium" >&2; fi; }

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# Caches and the private Redis's files; the database and the secrets under var/ are kept.
clean:
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache var/redis var/staticfiles

$(VENV)/.installed: requirements.txt
	@test -n "$(PYTHON)" || { echo "make: python3.11 or python3 is needed" >&2; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -r requirements.txt
	touch $@
