# p2p: `make demo` and `make test` set up .venv from a clean clone and run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DATA := data/synthetic

.PHONY: install demo serve test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,serve]'
	touch $(STAMP)

install: $(STAMP)

$(DEMO_DATA)/val: $(STAMP)
	$(PY) -m p2p.data.synthetic --out $(DEMO_DATA) --train 200 --val 16 --seed 0

demo: $(DEMO_DATA)/val
	$(PY) -m p2p.data.preview --config=configs/demo.py --out=runs/demo/preview.png
	$(VENV)/bin/p2p-train --config=configs/demo.py --workdir=runs/demo

# make serve WORKDIR=runs/demo [PORT=7860]: the run as a web page (docs/serve.md).
WORKDIR ?= runs/demo
PORT ?= 7860
serve: $(STAMP)
	$(VENV)/bin/p2p-serve --workdir=$(WORKDIR) --port=$(PORT)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist worksteal

test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist worksteal -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/input_pipeline.py --data_dir=../shared/data/maps --json

clean:
	rm -rf $(VENV) runs $(DEMO_DATA) .pytest_cache
