# Two commands do all the set-up on a fresh Linux machine with Python 3.10+:
#   make run    create .venv, install, and run the main job
#   make test   create .venv, install, run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= ../shared/data/fer2013.zip

.PHONY: run test lint install demo clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "fer needs Python 3.10 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Until the REST API lands, the main job is a short demonstration: train for one epoch on a
# 4,000-image subset and evaluate it, then evaluate the shipped baseline model for comparison.
run: $(STAMP)
	$(PY) -m training.train --data $(DATA) --arch vgg_slim --epochs 1 --max-samples 4000 --out runs/demo
	$(VENV)/bin/fer evaluate $(DATA) --split validation --weights runs/demo/best.pt
	$(VENV)/bin/fer evaluate $(DATA) --split validation

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
