# Two commands on a fresh clone: `make demo` and `make test`.
# Installs come from requirements-lock.txt (every package pinned, with its hashes), so
# every machine runs what was tested. After changing dependencies in pyproject.toml,
# run `make lock` (or `make lock UPGRADE=1` to move every pin to the newest allowed
# release), then `make test`, and commit both files.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements-lock.txt
LOCK_TOOLS := .venv-lock
UV_VERSION := 0.13.9

.PHONY: demo test lint install bench fuzz clean lock

# What `make lint` checks. tests/ joins once its own reformatting has landed.
LINT_PATHS := nurture tests benchmarks

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# uv resolves for every platform (--universal) and records each release's hashes.
# It lives in its own venv: the project's venv holds only what the lock names.
lock:
	test -x $(LOCK_TOOLS)/bin/uv || { $(PYTHON) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION); }
	$(LOCK_TOOLS)/bin/uv pip compile pyproject.toml --extra test --generate-hashes --universal \
		--python-version 3.11 --no-header --quiet $(if $(UPGRADE),--upgrade) -o $(LOCK)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m nurture.demo

# Lint first: CI runs `make test`, so a lint failure fails CI before the suite runs.
test: lint
	$(PY) -m pytest -q

# ruff's settings (the rules chosen and why) are in pyproject.toml under [tool.ruff].
lint: $(STAMP)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/ruff check $(LINT_PATHS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# Hostile and careless inputs per surface; longer: make fuzz FUZZ_ARGS="--inputs 20000 --seed 2"
fuzz: $(STAMP)
	$(PY) benchmarks/fuzz.py $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) $(LOCK_TOOLS) demo test-artifacts nurture.db* outbox preview
