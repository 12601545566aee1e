# One venv, one install step; every target below depends on it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	$(PY) -m pip check
	touch $(STAMP)

# Builds fractal_db/tiny when missing, pre-trains ResNet-50 on it (prints held-out accuracy and the
# TensorBoard command), then scores the backbone against a small SIMULATED brain dataset.
DEMO_DIR := runs/demo/$(shell date +%Y%m%d-%H%M%S)
demo: $(STAMP)
	$(PY) -m train.pretrain --workdir $(DEMO_DIR)
	$(PY) -m eval.neural --demo --model $(DEMO_DIR)/backbone.keras --workdir $(DEMO_DIR)/neural

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

# Skips the slow end-to-end tests (Beam multi-worker build, kill/resume).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS) tests

bench: $(STAMP)
	$(PY) -m benchmarks.run --out benchmarks/results

clean:
	rm -rf $(VENV) build *.egg-info
