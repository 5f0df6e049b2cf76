# Two entry points for a fresh Debian/Ubuntu machine: `make run` and `make test`.
# Each installs what it needs: system packages (as root, via apt), the virtual environment
# and the Python packages. Nothing else has to be done by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench fuzz bootstrap system-packages assets db-stop clean help

help:
	@echo "make run    – install what is missing, start PostGIS, load the demo county, serve on GIS_HOST:GIS_PORT"
	@echo "make test   – install what is missing and run the whole test suite against real PostGIS"
	@echo "make assets – install the map pages' npm packages and copy them to webmap/static/vendor"
	@echo "make db-stop – stop the self-managed PostgreSQL cluster"
	@echo "make bench  – run the benchmarks (routing: 1 M points, several minutes); tables in var/bench/"
	@echo "make fuzz   – the full fuzzing run: schemathesis and hypothesis with 25× the suite's examples"

run: bootstrap
	$(BIN)/gis-platform serve --demo

# The browser tests drive Debian's Chromium: `make test` also installs it (and a CJK font for screenshots).
test: WITH_BROWSER := 1
test: bootstrap
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: bootstrap
	$(BIN)/python -m bench

fuzz: bootstrap
	$(BIN)/python -m tests.security.fuzz_full

db-stop: bootstrap
	$(BIN)/gis-platform db stop

bootstrap: system-packages $(STAMP) assets

# PostgreSQL and PostGIS come from apt when run as root on Debian/Ubuntu; otherwise we say what
# is missing (the platform can also use an existing PostGIS through DATABASE_URL).
system-packages:
	@need=""; \
	command -v $(PYTHON) >/dev/null 2>&1 || need="$$need python3"; \
	$(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1 || need="$$need python3-venv"; \
	if [ -z "$$DATABASE_URL" ] && [ -z "$$GIS_TEST_DATABASE_URL" ]; then \
	  pgbin=$$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1); \
	  if [ -n "$$pgbin" ] && [ -x "$$pgbin/initdb" ]; then \
	    major=$$(basename $$(dirname "$$pgbin")); \
	    [ -f /usr/share/postgresql/$$major/extension/postgis.control ] || need="$$need postgresql-$$major-postgis-3"; \
	  else \
	    need="$$need postgresql postgis"; \
	  fi; \
	fi; \
	command -v npm >/dev/null 2>&1 || need="$$need npm"; \
	if [ -n "$(WITH_BROWSER)" ]; then \
	  [ -x /usr/bin/chromium ] || need="$$need chromium"; \
	  if command -v dpkg >/dev/null 2>&1; then \
	    dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || dpkg -s fonts-noto-cjk >/dev/null 2>&1 \
	      || need="$$need fonts-wqy-microhei"; \
	  fi; \
	fi; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing system packages:$$need"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 $$need; \
	  else \
	    echo "missing system packages:$$need"; \
	    echo "install them (sudo apt-get install$$need), or set DATABASE_URL to an existing PostGIS"; \
	    exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

# The map pages' front-end files come from the npm registry (webmap/package.json) and are served by the
# platform itself; `npm ci` runs again only when node_modules is missing or package-lock.json changed.
NODE_STAMP := webmap/node_modules/.installed

assets: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m webmap.assets build

$(NODE_STAMP): webmap/package-lock.json webmap/package.json
	npm ci --prefix webmap --no-audit --no-fund
	@touch $@

clean:
	rm -rf $(VENV) build *.egg-info
