# Two entry points, each self-contained on a fresh machine: `make demo` and `make test`.
# torch is pinned to the exact CPU build this environment provides (any other spec pulls CUDA).
VENV := .venv
PY := $(VENV)/bin/python
TORCH := torch==2.13.0
TF_STACK := tensorflow==2.21.0 "keras==3.15.*" "tf-keras==2.21.*" "keras-hub==0.32.*"

.PHONY: demo test test-all test-browser report-screenshot lint clean bench bench-quick zoo

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev,tflite,onnx]" $(TF_STACK)
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/demo.py

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 -q

test-all: $(VENV)/.installed
	$(PY) -m pytest -n 2 -q -m ""

# verification.html in headless Chromium (the Debian package; installed here when missing).
test-browser: $(VENV)/.installed
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(PY) -m pytest -q -m browser tests/verify/test_browser.py

# docs/verification_report.png, the README's screenshot (MobileNetV2 at 96x96).
report-screenshot: $(VENV)/.installed
	$(PY) scripts/report_screenshot.py

# All 40 keras.applications models, .keras and .h5: fidelity, conversion and forward time -> docs/zoo.md.
zoo: $(VENV)/.installed
	$(PY) scripts/zoo.py

# Benchmarks (bench/README.md) in their own venv: the other converters never enter .venv.
# onnx2torch is installed without its dependencies: it declares torchvision, which would pull a
# CUDA torch; the benchmark puts a stand-in for the two torchvision.ops it imports on sys.path.
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python

$(BENCH_VENV)/.installed: pyproject.toml
	python3 -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip
	$(BENCH_PY) -m pip install -q $(TORCH)
	$(BENCH_PY) -m pip install -q $(TF_STACK) tf2onnx onnx
	$(BENCH_PY) -m pip install -q --no-deps onnx2torch
	$(BENCH_PY) -m pip install -q -e .
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_PY) bench/run.py $(BENCH_ARGS)

# Eval forward against TensorFlow on this machine (CPU model and flags recorded), < 10 min.
bench-quick: $(BENCH_VENV)/.installed
	$(BENCH_PY) bench/run.py --quick $(BENCH_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests examples scripts

clean:
	rm -rf $(VENV) out
