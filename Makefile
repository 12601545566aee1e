# One venv, one install step; every target below depends on it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Test workers (pytest-xdist): one per core; a file's tests stay on one worker (module fixtures build once).
TEST_WORKERS ?= auto

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	@# pyrender renders offscreen through EGL with Mesa's llvmpipe on CPU-only machines.
	ldconfig -p | grep -q libEGL_mesa || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 >/dev/null; } \
	    || echo "WARNING: could not install Mesa EGL (libegl-mesa0, libgl1-mesa-dri): 3D rendering will fail" >&2
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	$(PY) -m pip check
	touch $(STAMP)

# Builds fractal_db/tiny when missing, pre-trains ResNet-50 on it (prints held-out accuracy and the
# TensorBoard command), fine-tunes it and a scratch ResNet-50 on real handwritten digits (prints the transfer
# table), draws their first-layer filters, scores the backbone against a small SIMULATED brain dataset, and
# writes a ProcSynthDB contact sheet.
DEMO_DIR := runs/demo/$(shell date +%Y%m%d-%H%M%S)
demo: $(STAMP)
	$(PY) -m train.pretrain --workdir $(DEMO_DIR)
	$(PY) -m train.finetune --config digits_demo --backbone $(DEMO_DIR)/backbone.keras --workdir $(DEMO_DIR)/finetune/fractal_db_tiny
	$(PY) -m train.finetune --config digits_demo --init scratch --workdir $(DEMO_DIR)/finetune/scratch
	$(PY) -m eval.transfer --runs $(DEMO_DIR)/finetune --out $(DEMO_DIR)/transfer
	@echo "Note: this demo cannot tell whether synthetic pre-training helps: one fine-tuning seed per row, so a gap of a"
	@echo "point or two is within seed-to-seed noise, and 30 epochs on 48 tiny images leave the first-layer filters"
	@echo "mostly unstructured. The laptop-scale experiment (7 pre-training sources, 5 seeds, 95 % intervals, paired"
	@echo "differences, low-data regimes, linear probes) is docs/results/beyond_flatland_small/results.md."
	$(PY) -m eval.filters --model fractal_db_tiny=$(DEMO_DIR)/backbone.keras --model scratch=$(DEMO_DIR)/finetune/scratch/model.keras --out $(DEMO_DIR)/filters
	$(PY) -m eval.neural --demo --model $(DEMO_DIR)/backbone.keras --workdir $(DEMO_DIR)/neural
	$(PY) -m eval.contact_sheet --data proc_synth_db/tiny --out $(DEMO_DIR)/proc_synth_db_tiny.png --logdir $(DEMO_DIR)/sheets

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations 15 $(PYTEST_ARGS) tests

# Skips the slow end-to-end tests (Beam multi-worker build, kill/resume).
test-fast: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS) tests

# ruff with the project's line length (ruff.toml): pyflakes, pycodestyle errors, lines over 120 characters.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m benchmarks.run --out benchmarks/results

clean:
	rm -rf $(VENV) build *.egg-info
