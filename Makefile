# Two entry points, each self-contained on a fresh machine: `make demo` and `make test`.
# torch is pinned to the exact CPU build this environment provides (any other spec pulls CUDA).
VENV := .venv
PY := $(VENV)/bin/python
TORCH := torch==2.13.0
TF_STACK := tensorflow==2.21.0 "keras==3.15.*" "tf-keras==2.21.*"

.PHONY: demo test test-all lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev]" $(TF_STACK)
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/demo.py

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 -q

test-all: $(VENV)/.installed
	$(PY) -m pytest -n 2 -q -m ""

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests examples scripts

clean:
	rm -rf $(VENV) out
