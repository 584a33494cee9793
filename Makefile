# prepush: make demo | make test | make lint | make bench
# Each target prepares what it needs on a fresh Debian machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSPKGS := openssh-server nginx-light rsync chromium chromium-driver
BENCHPKGS := lftp rclone awscli
PYTEST_ARGS ?=

.PHONY: demo test lint bench sysdeps venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# System packages the tests drive for real: OpenSSH's sshd, nginx, rsync, Chromium.
sysdeps:
	@missing=""; \
	for p in $(SYSPKGS) $(EXTRA_SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "Instalando paquetes del sistema:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check prepush tests $(wildcard bench/*.py)
	$(BIN)/ruff format --check prepush tests $(wildcard bench/*.py)
	$(BIN)/mypy --strict prepush

test: sysdeps $(STAMP) lint
	$(BIN)/pytest $(PYTEST_ARGS)

demo: $(STAMP)
	mkdir -p demo
	$(BIN)/prepush -C demo simulate --demo

bench: $(STAMP)
	$(MAKE) sysdeps EXTRA_SYSPKGS="$(BENCHPKGS)"
	$(BIN)/python bench/run.py
	$(BIN)/python bench/s3.py
	$(BIN)/python bench/pull.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
