# vizvi: every target builds what it needs from the repository (a .venv from requirements.txt and
# requirements-test.txt with vizvi itself installed in editable mode, Debian's chromium for the
# browser tests), so a fresh machine needs nothing installed by hand.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# The pins live in requirements.txt (runtime) and requirements-test.txt (pytest, playwright);
# pyproject.toml reads both, so each pin is written once. The stamp changes with any of the three.
VENV_INPUTS := requirements.txt requirements-test.txt pyproject.toml
STAMP := $(VENV)/.installed-$(shell cat $(VENV_INPUTS) | sha1sum | cut -c1-12)
CHROMIUM := /usr/bin/chromium
PORT ?= 8501

.PHONY: run test bench venv chromium cli-help clean

venv: $(STAMP)

# vizvi itself goes in editable (--no-deps: the pins above are its dependencies), which gives the
# `vizvi` command and `import vizvi` from any folder. Without build isolation: setuptools is pinned
# in requirements-test.txt, so the build downloads nothing.
$(STAMP): $(VENV_INPUTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
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

# MODEL=path/to/model.py (or several, space-separated) adds model files to the dashboard's list;
# MAX_TRAINING=N sets how many sessions train at once (more queue). vizvi.serve is `streamlit
# run` plus a warm-up: the default run and the presets compile in the background at start.
run: $(STAMP)
	$(PY) -m vizvi.serve dashboard.py --server.port $(PORT) -- $(foreach m,$(MODEL),--model-file $(m)) $(if $(MAX_TRAINING),--max-training $(MAX_TRAINING))

test: $(STAMP) chromium
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m bench

cli-help: $(STAMP)
	$(VENV)/bin/vizvi run --help

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts build vizvi.egg-info
