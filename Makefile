# prepush: make demo | make test | make lint | make bench
# Each target prepares what it needs on a fresh Debian machine.
# Python packages come only from the lock (prepush/lock/), every file checked by its sha256.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK_DIR     := prepush/lock
LOCK         := $(LOCK_DIR)/dev.txt
RUNTIME_LOCK := $(LOCK_DIR)/runtime.txt
UV_LOCK      := $(LOCK_DIR)/uv.txt
LATEST := .venv-latest
SYSPKGS := openssh-server nginx-light rsync chromium chromium-driver nodejs postgresql \
	groff-base
BENCHPKGS := lftp rclone awscli
PYTEST_ARGS ?=
AXE_DIR := tests/axe
AXE     := $(AXE_DIR)/node_modules/axe-core/axe.min.js
# uv uses the machine's Python, never one it downloads, and no user configuration.
export UV_PYTHON_DOWNLOADS := never
export UV_NO_CONFIG := 1

.PHONY: demo test test-latest lint bench sysdeps venv lock clean axe man

# The exact locked set: pip installs uv by its hashes, uv installs the lock by its hashes
# (and removes anything not in it), then prepush itself, built by the locked setuptools.
$(STAMP): $(LOCK) $(UV_LOCK) pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r $(UV_LOCK)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes $(LOCK)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# A deliberate upgrade: the newest versions pyproject.toml's ranges allow, resolved for
# Python 3.11+ on every platform, each file with its sha256. Run 'make test' on it.
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --quiet \
	--custom-compile-command "make lock"
lock: $(STAMP)
	$(BIN)/uv pip compile $(LOCK_FLAGS) --upgrade --extra test --extra bench \
		pyproject.toml $(LOCK_DIR)/dev.in -o $(LOCK)
	$(BIN)/uv pip compile $(LOCK_FLAGS) --constraint $(LOCK) \
		pyproject.toml $(LOCK_DIR)/build.in -o $(RUNTIME_LOCK)
	echo uv | $(BIN)/uv pip compile $(LOCK_FLAGS) --constraint $(LOCK) - -o $(UV_LOCK)
	$(MAKE) venv

# Tomorrow's break seen today: the suite on the newest versions the ranges allow, in a
# virtualenv of its own (the lock untouched).
test-latest: sysdeps $(STAMP) $(AXE)
	rm -rf $(LATEST)
	$(BIN)/uv venv --quiet --python $(PYTHON) $(LATEST)
	$(BIN)/uv pip install --quiet --python $(LATEST)/bin/python --upgrade -e '.[test,bench]'
	$(BIN)/uv pip freeze --python $(LATEST)/bin/python > $(LATEST)/freeze.txt
	$(LATEST)/bin/ruff check prepush tests $(wildcard bench/*.py)
	$(LATEST)/bin/mypy --strict prepush
	$(LATEST)/bin/pytest -m "not locked" $(PYTEST_ARGS)

# System packages the tests drive for real: OpenSSH's sshd, nginx, rsync, Chromium, PostgreSQL.
sysdeps:
	@missing=""; \
	for p in $(SYSPKGS) $(EXTRA_SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "Instalando paquetes del sistema:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# axe-core for the site's accessibility tests, from the npm registry, pinned with its
# integrity hash in tests/axe/package-lock.json (npm ci installs exactly that or fails).
$(AXE): $(AXE_DIR)/package-lock.json
	@command -v npm >/dev/null || $(MAKE) sysdeps EXTRA_SYSPKGS=npm
	npm ci --prefix $(AXE_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(AXE)

axe: $(AXE)

lint: $(STAMP)
	$(BIN)/ruff check prepush tests $(wildcard bench/*.py)
	$(BIN)/ruff format --check prepush tests $(wildcard bench/*.py)
	$(BIN)/mypy --strict prepush

test: sysdeps $(STAMP) $(AXE) lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The man page, from each command's own help (tests/cli/test_slips.py checks it is current).
man: $(STAMP)
	$(BIN)/python -m prepush.cli.man > docs/prepush.1

demo: $(STAMP)
	mkdir -p demo
	$(BIN)/prepush -C demo simulate --demo

bench: $(STAMP)
	$(MAKE) sysdeps EXTRA_SYSPKGS="$(BENCHPKGS)"
	$(BIN)/python bench/run.py
	$(BIN)/python bench/s3.py
	$(BIN)/python bench/pull.py
	$(BIN)/python bench/site.py

clean:
	rm -rf $(VENV) $(LATEST) .mypy_cache .ruff_cache .pytest_cache
