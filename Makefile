# vizvi: every target builds what it needs from the repository (a .venv from requirements.txt,
# Debian's chromium for the browser tests), so a fresh machine needs nothing installed by hand.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
CHROMIUM := /usr/bin/chromium
PORT ?= 8501

.PHONY: run test bench venv chromium cli-help clean

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

# Debian's chromium drives the real-browser tests (Playwright must not download a browser).
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation >/dev/null) \
	      || { echo "could not install chromium with apt-get" >&2; exit 1; }; \
	  else echo "chromium is missing: run 'sudo apt-get install chromium' (needed by the browser tests)" >&2; exit 1; fi; \
	fi

run: $(STAMP)
	$(PY) -m streamlit run dashboard.py --server.port $(PORT)

test: $(STAMP) chromium
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m bench

cli-help: $(STAMP)
	$(PY) -m vizvi run --help

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
