# Two entry points for a fresh Debian/Ubuntu machine: `make run` and `make test`.
# Each installs what it needs: system packages (as root, via apt), the virtual environment
# and the Python packages. Nothing else has to be done by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench bootstrap system-packages db-stop clean help

help:
	@echo "make run    – install what is missing, start PostGIS, load the demo county, serve on GIS_HOST:GIS_PORT"
	@echo "make test   – install what is missing and run the whole test suite against real PostGIS"
	@echo "make db-stop – stop the self-managed PostgreSQL cluster"
	@echo "make bench  – run the benchmarks (routing: 1 M points, several minutes); tables in var/bench/"

run: bootstrap
	$(BIN)/gis-platform serve --demo

test: bootstrap
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: bootstrap
	$(BIN)/python -m bench

db-stop: bootstrap
	$(BIN)/gis-platform db stop

bootstrap: system-packages $(STAMP)

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

clean:
	rm -rf $(VENV) build *.egg-info
