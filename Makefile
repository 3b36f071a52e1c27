# Two commands: `make run` serves the main job, `make test` passes every test.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PORT ?= 5000
export PORT

.PHONY: run test install peer system bench clean
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

tests/peer/node_modules/.package-lock.json: tests/peer/package-lock.json
	npm ci --prefix tests/peer --no-audit --no-fund
	touch $@

peer: tests/peer/node_modules/.package-lock.json

# Tests start throwaway PostgreSQL 15 clusters (Debian's package brings the binaries and
# the `postgres` user they run as) and drive Debian's Chromium through Playwright (never
# `playwright install`, which downloads a browser).
SYSTEM_PACKAGES = $(if $(wildcard /usr/lib/postgresql/15/bin/initdb),,postgresql-15) \
	$(if $(wildcard /usr/bin/chromium),,chromium)
system:
	@test -z "$(strip $(SYSTEM_PACKAGES))" || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(SYSTEM_PACKAGES); }

# The demo data set (wasl demo) is loaded unless WASL_DEMO=0; a second run changes nothing.
WASL_DEMO ?= 1
run: install
	$(VENV)/bin/wasl init
	@if [ "$(WASL_DEMO)" != 0 ]; then $(VENV)/bin/wasl demo; fi
	$(VENV)/bin/wasl serve --port $(PORT)

# The suite spreads over TEST_JOBS processes (pytest-xdist); each starts its own throwaway
# PostgreSQL cluster and serves on its own loopback ports. TEST_JOBS=0 runs it in one process.
TEST_JOBS ?= 2
test: install peer system bench/peer/node_modules/.package-lock.json
	$(VENV)/bin/flake8 api sync models crypto wasl_cli tests bench wsgi.py
	$(VENV)/bin/pytest -n $(TEST_JOBS)

bench/peer/node_modules/.package-lock.json: bench/peer/package-lock.json
	npm ci --prefix bench/peer --no-audit --no-fund
	touch $@

bench: install peer system bench/peer/node_modules/.package-lock.json
	$(PY) bench/all.py

clean:
	rm -rf $(VENV) tests/peer/node_modules bench/peer/node_modules
