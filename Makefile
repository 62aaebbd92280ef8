# Curate: `make demo` runs the main job on the bundled data; `make test` runs the tests.
# Both create .venv on first use: torch 2.13.0 (CPU wheel) first, then the project.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Build the default store (20,000 WordNet glosses: embed + proxy signals), select 10% with
# CLD, and evaluate it against random subsets of the same size.
demo: $(STAMP)
	$(BIN)/curate init --default
	$(BIN)/curate select --method cld --budget 0.1
	$(BIN)/curate evaluate $$($(BIN)/curate select --method cld --budget 0.1 --json \
		| $(BIN)/python -c "import json,sys; print(json.load(sys.stdin)['selection_id'])")

# The Ray tests run in their own pytest process: a Ray driver shares the process with
# whatever earlier tests left behind (threads, signal handlers), and once crashed the suite.
# The rest runs on two pytest-xdist workers, one test file per worker at a time, each with one
# OpenMP/MKL thread: two workers whose torch and FAISS thread pools each spin on both cores
# made the run 1.5x slower (7m38s vs 5m02s measured back to back); a test's numbers do not
# depend on the thread count.
test: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile \
		--ignore=tests/test_ray_executor.py
	$(BIN)/python -m pytest -q tests/test_ray_executor.py

lint: $(STAMP)
	$(BIN)/ruff check core curate stores retrieval tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/subset_quality.py

clean:
	rm -rf $(VENV) .curate .pytest_cache
