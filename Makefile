# Two entry points for a fresh machine (see README): `make run` and `make test`.
# Both create or update .venv from requirements.lock first; nothing else to type.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint venv lock clean-home browser mariadb

venv: $(STAMP)

# The lock is installed exactly (uv pip sync, no resolution), then this project
# in editable mode. uv comes from the lock too; plain pip only bootstraps it.
$(STAMP): requirements.lock setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$$(grep '^uv==' requirements.lock)"
	$(BIN)/uv pip sync --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps --no-build-isolation -e .
	$(BIN)/python -c "from google.protobuf.internal import api_implementation as a; t = a.Type(); assert t == 'upb', f'protobuf backend is {t}, expected upb (see README: Dependencies)'"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ltr run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) browser mariadb
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Headless Chromium (Debian's `chromium`) for the run report's browser test
# (tests/test_run_report_browser.py). Installed with apt-get when missing; where it
# cannot be (no root, no apt), the test skips and says why.
SUDO := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null && echo sudo -n)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing chromium (apt-get) for the run report's browser test"; \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; } \
	  || echo "WARNING: chromium could not be installed: the browser test will be skipped"; }

# Re-resolve the lock after editing requirements.in (the only way dependencies change).
lock:
	$(BIN)/uv pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 requirements.in -o requirements.lock

clean-home:
	rm -rf ltr-home

# MariaDB for the MySQL-backed MLMD test (tests/test_mlmd_mysql.py starts its own server
# on a private port and data directory; it is never started as a system service).
# Installed from Debian's packages when missing and we are root (CI runs as root);
# otherwise nothing is installed and that test is skipped, saying why.
MARIADBD_PATHS := /usr/sbin/mariadbd /usr/sbin/mysqld
mariadb:
	@if command -v mariadbd >/dev/null 2>&1 || ls $(MARIADBD_PATHS) >/dev/null 2>&1; then \
	  echo "mariadb: server present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "mariadb: installing Debian's mariadb-server"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server \
	    || echo "mariadb: install failed; the MySQL MLMD test will be skipped"; \
	else \
	  echo "mariadb: not installed (needs root and apt-get); the MySQL MLMD test will be skipped"; \
	fi
