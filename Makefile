# The two commands: `make demo` and `make test`. Everything else is set up by them.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: demo test check setup browser lint typecheck unit bench clean screenshots

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

setup: $(if $(filter .tools/bin/uv,$(UV)),.tools/bin/uv)
	$(UV) sync --frozen --quiet

demo: setup
	.venv/bin/segflow demo $(ARGS)

lint: setup
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench

typecheck: setup
	.venv/bin/mypy

# The end-to-end UI tests drive Debian's Chromium; install it when it is missing.
browser:
	@command -v chromium >/dev/null || { $(if $(shell command -v sudo),sudo) apt-get install -y --no-install-recommends chromium >/dev/null || { apt-get update -qq && apt-get install -y --no-install-recommends chromium >/dev/null; }; }

# One pytest worker per core (pytest-xdist); each takes whole modules (tests/conftest.py).
XDIST := -n auto --dist loadgroup --no-loadscope-reorder

unit: setup browser
	.venv/bin/pytest $(XDIST) $(PYTEST_ARGS)

test: lint typecheck unit

# The inner loop: lint, types and the tests not marked slow, with fewer generated examples.
check: lint typecheck
	SEGFLOW_EXAMPLES=25 .venv/bin/pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

# Every page of the web UI at desktop and phone width, on a small generated shop, into
# screenshots/ (not in git) for review.
screenshots: setup browser
	.venv/bin/python -m tests.e2e.screenshots --out screenshots $(ARGS)

bench: setup
	.venv/bin/python bench/batch.py $(ARGS)

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
