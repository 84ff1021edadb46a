# mixbench: every target builds the local virtual environment first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= results

.PHONY: setup test report bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	touch $@

test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

report: setup
	$(BIN)/python -m experiments run --config experiments/configs/default.toml --out $(OUT)
	$(BIN)/python -m experiments report $(OUT)

bench: setup
	$(BIN)/python -m benchmarks.run_benchmarks --out benchmarks/results

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
