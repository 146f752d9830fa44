# tagledger — set-up plumbing.
#
# The README documents exactly two commands:
#   make serve   # create .venv (first use), install, run the service (store created on first use)
#   make test    # create .venv (first use), install, run the whole test suite + PostgreSQL coverage check
#
# Everything else here is a helper.  `make venv` is idempotent: it (re)installs only when
# pyproject.toml is newer than the stamp file .venv/.installed.

SHELL        := /bin/bash
.DEFAULT_GOAL := test

PYTHON       ?= python3
VENV         := .venv
VENV_PY      := $(VENV)/bin/python
STAMP        := $(VENV)/.installed

# Extra arguments: `make serve ARGS='--port 8080'`, `make test PYTEST_ARGS='-x -k chain'`.
ARGS         ?=
PYTEST_ARGS  ?=

# Data directory of the service; an existing TAGLEDGER_HOME in the environment wins.
TAGLEDGER_HOME ?= $(CURDIR)/var
export TAGLEDGER_HOME

PG_REPORT    := .pytest-pg-report.json

.PHONY: venv sysdeps pdfdeps serve test bench clean

# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------

venv: $(STAMP)
	@:

$(VENV_PY):
	@echo ">> creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)

# pip -q keeps it quiet but still prints errors; a failed install leaves no stamp, so the next
# run tries again.
$(STAMP): pyproject.toml | $(VENV_PY)
	@echo ">> installing tagledger (editable, extras [dev]) into $(VENV)"
	@$(VENV_PY) -m pip install -qq --disable-pip-version-check -e '.[dev]'
	@touch $@

# Debian packages the tests need: chromium, for the browser tests of the verification page and of the phone
# app (tests/browser/; the app's are driven by Playwright, a Python package of the [dev] extras, pointed at this
# chromium: no browser is ever downloaded), nginx, the static web server of the tiles tests
# (tests/test_tiles_nginx.py), and poppler-utils (pdftotext, pdftoppm), with which the tests read the
# due-diligence report's PDF back; and the PDF renderer's libraries (pdfdeps). Installed only when one is missing,
# quietly (errors still show); as root, or through `sudo -n` otherwise.  If they cannot be installed, `make test`
# stops here; without them those tests fail under CI=true and are skipped (with a banner for chromium) otherwise.
sysdeps: pdfdeps
	@{ command -v chromium && { command -v nginx || [ -x /usr/sbin/nginx ]; } && command -v pdftoppm; } >/dev/null 2>&1 || { \
	  echo ">> installing Debian's chromium, nginx and poppler-utils for the browser, tiles and PDF tests"; \
	  sudo=; [ "$$(id -u)" -eq 0 ] || sudo="sudo -n"; \
	  $$sudo apt-get update -qq >/dev/null || echo ">> apt-get update failed; trying the package lists at hand"; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium nginx poppler-utils >/dev/null; }

# What WeasyPrint (the due-diligence report's PDF, GET /v1/reports/due-diligence/{tag}?format=pdf) lays text out
# with: pango and harfbuzz's subsetter, from Debian. Needed by `serve` and the tests; installed as sysdeps is.
pdfdeps:
	@{ /sbin/ldconfig -p | grep -q libpangoft2-1.0 && /sbin/ldconfig -p | grep -q libharfbuzz-subset; } >/dev/null 2>&1 || { \
	  echo ">> installing Debian's pango and harfbuzz-subset for the PDF reports"; \
	  sudo=; [ "$$(id -u)" -eq 0 ] || sudo="sudo -n"; \
	  $$sudo apt-get update -qq >/dev/null || echo ">> apt-get update failed; trying the package lists at hand"; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 \
	    libharfbuzz-subset0 >/dev/null || echo ">> could not install pango: the PDF reports will answer 503"; }

# ---------------------------------------------------------------------------------------------
# The two README commands
# ---------------------------------------------------------------------------------------------

serve: venv pdfdeps
	@$(VENV)/bin/tagledger serve $(ARGS)

# Plain pytest (no xdist).  Then scripts/check_pg_report.py fails the target if PostgreSQL was
# unreachable or any PostgreSQL test was skipped.  A pytest failure fails the target too (its exit
# code wins); the check runs in either case so its message is always shown.
test: venv sysdeps
	@rm -f $(PG_REPORT)
	@rc=0; \
	$(VENV_PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	check=0; \
	$(VENV_PY) scripts/check_pg_report.py $(PG_REPORT) || check=$$?; \
	if [ $$rc -ne 0 ]; then echo ">> make test: pytest failed (exit $$rc)" >&2; exit $$rc; fi; \
	exit $$check

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

# Benchmarks live in bench/; the entry point is bench/run.py (ARGS are passed through).
bench: venv
	@if [ ! -f bench/run.py ]; then echo ">> bench/run.py does not exist yet" >&2; exit 1; fi
	@$(VENV_PY) bench/run.py $(ARGS)

# Removes the environment and build/test debris.  Does NOT remove var/ (the service's data).
clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis $(PG_REPORT)
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
