# Two entry points: `make demo` and `make test`. Both bootstrap .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the engine compiled with mypyc (streams/compiled.py lists the modules); rebuilt when they change
COMPILED := $(VENV)/.compiled
CORE := setup.py streams/compiled.py streams/runtime.py streams/codec.py streams/contract.py streams/epochs.py \
	streams/flow.py streams/tables.py streams/web/meter.py streams/measure/results.py \
	$(wildcard streams/engine/*.py streams/engine/rules/*.py)

.PHONY: demo test lint unit bench compile codegen clean

# slow first-run steps say what they do, with the elapsed time (tools/step.py: standard library)
STEP := $(PYTHON) tools/step.py

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(STEP) "creating the virtual environment $(VENV)" -- $(PYTHON) -m venv $(VENV)
	@$(STEP) "installing the project and its packages into $(VENV) (pip; first run only)" -- \
		sh -c "$(BIN)/python -m pip install -q --upgrade pip && $(BIN)/python -m pip install -q -e '.[dev]'"
	@touch $(STAMP)

# without gcc or the Python headers the engine runs from source (`make test` then fails, since it
# expects the compiled engine: test_compiled.py)
$(COMPILED): $(STAMP) $(CORE)
	@if $(STEP) --log $(VENV)/compile.log "compiling the engine with mypyc (first run, or after it changed; 1-3 min)" -- \
		env MICROMARKETING_COMPILE=1 $(BIN)/python setup.py -q build_ext --inplace; \
	then touch $(COMPILED); \
	else echo "WARNING: the engine could not be compiled (see $(VENV)/compile.log): it runs from source"; fi

compile: $(COMPILED)

# its first line is the console's address (make's own echo would come before it: @)
demo: $(COMPILED)
	@$(BIN)/micromarketing demo $(DEMO_ARGS)

# everything on the compiled engine, then the unit tests again on its Python source. Lint runs
# while the engine compiles (each takes one core). The whole suite runs in TEST_JOBS processes
# (pytest-xdist): most of its time is spent waiting on subprocesses and the broker, not on the
# CPU; a test module stays in one process, so its module fixtures start once. The unit tests
# are CPU-bound: in two processes they would gain little on two cores. Tests marked `serial`
# (they SIGKILL workers and time the recovery of a consumer group) run alone, afterwards.
TEST_JOBS ?= 2
test: $(STAMP)
	@$(MAKE) --no-print-directory -j2 --output-sync=line $(COMPILED) lint
	MICROMARKETING_EXPECT_COMPILED=1 $(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadscope --durations=15 -m "not serial"
	MICROMARKETING_EXPECT_COMPILED=1 $(BIN)/python -m pytest -m serial
	MICROMARKETING_PURE=1 $(BIN)/python -m pytest -q tests/unit

unit: $(COMPILED)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# rewrite the code derived from streams/engine/registry.py and state.FIELDS (a unit test fails
# while it is out of date)
codegen: $(STAMP)
	$(BIN)/python -m streams.codegen

bench: $(COMPILED)
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/live.py
	$(BIN)/python bench/collector.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
	find . -name '*.so' -not -path './.venv/*' -delete
