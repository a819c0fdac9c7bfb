"""Timing workers, one framework per process (run by bench/run.py, not by hand).

    python bench/workers.py tf          CONFIG_JSON   TensorFlow: tf.function forward, train step
    python bench/workers.py torch       CONFIG_JSON   tf2torch's model.py (+ variants), onnx2torch
    python bench/workers.py keras_torch CONFIG_JSON   Keras 3 on the torch backend

Every worker sets the same thread count before its framework runs anything, feeds the same
random inputs (NHWC for TensorFlow / Keras / the ONNX graph, the same values as NCHW for
tf2torch) and reports the median of `runs` timed calls after `warmup` untimed ones. The
result is one JSON object on the last line of stdout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
NUM_CLASSES = 1000
IMAGE_SIZE = 224
LEARNING_RATE = 1e-4


def images(batch: int, seed: int = 1):
    import numpy as np

    return np.random.default_rng(seed).uniform(0, 255, (batch, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")


def labels(batch: int, seed: int = 2):
    import numpy as np

    return np.random.default_rng(seed).integers(0, NUM_CLASSES, (batch,)).astype("int64")


def median_seconds(fn, warmup: int, runs: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def runs_for(config: dict, batch: int) -> tuple[int, int]:
    """(warmup, runs): more runs for the cheap batch-1 calls."""
    warmup, runs = config["warmup"], config["runs"]
    return (warmup, runs * 2) if batch == 1 else (warmup, runs)


def guarded(results: dict, key: str, fn) -> None:
    """Run one measurement; a failure is recorded as the error text, not a crash."""
    try:
        results[key] = fn()
    except Exception as exc:  # noqa: BLE001 - reported in the table
        traceback.print_exc(file=sys.stderr)
        results[key] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]}


# -- TensorFlow -----------------------------------------------------------------------------


def run_tf(config: dict) -> dict:
    import tensorflow as tf

    threads = config["threads"]
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras

    results: dict = {}
    cache = Path(config["cache"])
    for name in config["models"]:
        model = keras.models.load_model(cache / "models" / f"{name}.keras", compile=False)
        forward = tf.function(lambda x, model=model: model(x, training=False))
        for batch in config["batches"]:
            x = tf.constant(images(batch))
            warmup, runs = runs_for(config, batch)
            guarded(results, f"forward/{name}/{batch}",
                    lambda f=forward, x=x, w=warmup, r=runs: median_seconds(lambda: f(x).numpy(), w, r))
        if name in config["train_models"]:
            guarded(results, f"train/{name}/{config['train_batch']}", lambda model=model: _tf_train(tf, keras, model, config))
        del model, forward
        keras.backend.clear_session()
    return results


def _tf_train(tf, keras, model, config: dict) -> float:
    batch = config["train_batch"]
    optimizer = keras.optimizers.SGD(LEARNING_RATE)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x, y = tf.constant(images(batch)), tf.constant(labels(batch))

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return median_seconds(lambda: train_step(x, y).numpy(), config["warmup"], config["train_runs"])


# -- PyTorch: tf2torch and onnx2torch ---------------------------------------------------------


def set_torch_threads(torch, threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set (only possible once per process)
        pass


def load_generated(directory: Path):
    """Import a converted model.py as a standalone file and build it with its load_model()."""
    name = f"bench_{directory.name}"
    spec = importlib.util.spec_from_file_location(name, directory / "model.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.load_model()


def run_torch(config: dict) -> dict:
    import torch

    set_torch_threads(torch, config["threads"])
    results: dict = {}
    cache = Path(config["cache"])
    for name in config["models"]:
        out = cache / "tf2torch" / name
        if (out / "model.py").exists():
            _tf2torch_forward(torch, config, results, name, out)
            if name in config["train_models"]:
                guarded(results, f"train/{name}/{config['train_batch']}", lambda out=out: _torch_train(torch, config, out))
        onnx_path = cache / "onnx" / f"{name}.onnx"
        if onnx_path.exists() and config.get("onnx2torch", True):
            _onnx2torch_forward(torch, config, results, name, onnx_path)
    return results


def _tf2torch_forward(torch, config: dict, results: dict, name: str, out: Path) -> None:
    from tf2torch.optimize import optimize_for_inference

    channels_last = torch.channels_last
    variants = {
        # model.py exactly as generated, NCHW input
        "tf2torch": (lambda: load_generated(out).eval(), torch.contiguous_format),
        # the same module with its 4-D weights in channels_last memory format as well
        "tf2torch_cl": (lambda: load_generated(out).eval().to(memory_format=channels_last), channels_last),
        # tf2torch.optimize_for_inference: BatchNorm folded into the convolutions, channels_last
        "tf2torch_fused": (lambda: optimize_for_inference(load_generated(out)), channels_last),
    }
    wanted = config.get("variants", list(variants))
    for variant, (make, memory_format) in variants.items():
        if variant not in wanted:
            continue
        try:
            module = make()
        except Exception as exc:  # noqa: BLE001
            for batch in config["batches"]:
                results[f"forward/{name}/{batch}/{variant}"] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            continue
        for batch in config["batches"]:
            x = torch.from_numpy(images(batch)).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
            warmup, runs = runs_for(config, batch)

            def call(module=module, x=x):
                with torch.inference_mode():
                    module(x)

            guarded(results, f"forward/{name}/{batch}/{variant}", lambda c=call, w=warmup, r=runs: median_seconds(c, w, r))


def _torch_train(torch, config: dict, out: Path) -> dict:
    import torch.nn.functional as F

    batch = config["train_batch"]
    x_nhwc = torch.from_numpy(images(batch))
    y = torch.from_numpy(labels(batch))
    timings = {}
    for variant, memory_format in (("tf2torch", torch.contiguous_format), ("tf2torch_cl", torch.channels_last)):
        model = load_generated(out).train().to(memory_format=memory_format)
        optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
        x = x_nhwc.permute(0, 3, 1, 2).contiguous(memory_format=memory_format)

        def step(model=model, optimizer=optimizer, x=x):
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()

        timings[variant] = median_seconds(step, config["warmup"], config["train_runs"])
    return timings


def _onnx2torch_forward(torch, config: dict, results: dict, name: str, onnx_path: Path) -> None:
    sys.path.insert(0, str(BENCH_DIR / "_stubs"))
    import onnx2torch

    try:
        module = onnx2torch.convert(str(onnx_path)).eval()
    except Exception as exc:  # noqa: BLE001
        for batch in config["batches"]:
            results[f"forward/{name}/{batch}/onnx2torch"] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        return
    for batch in config["batches"]:
        x = torch.from_numpy(images(batch))  # the ONNX graph keeps TensorFlow's NHWC input
        warmup, runs = runs_for(config, batch)

        def call(x=x):
            with torch.inference_mode():
                module(x)

        guarded(results, f"forward/{name}/{batch}/onnx2torch", lambda c=call, w=warmup, r=runs: median_seconds(c, w, r))


# -- Keras 3 on the torch backend --------------------------------------------------------------


def run_keras_torch(config: dict) -> dict:
    assert os.environ.get("KERAS_BACKEND") == "torch", "run with KERAS_BACKEND=torch"
    import torch

    set_torch_threads(torch, config["threads"])
    import keras

    results: dict = {}
    cache = Path(config["cache"])
    # The slowest column by far: half the runs (still a median of >= 3) keeps the run short.
    config = {**config, "warmup": max(1, config["warmup"] - 1), "runs": max(3, config["runs"] // 2)}
    for name in config["models"]:
        model = keras.models.load_model(cache / "models" / f"{name}.keras", compile=False)
        for batch in config["batches"]:
            x = torch.from_numpy(images(batch))
            warmup, runs = runs_for(config, batch)

            def call(x=x, model=model):
                with torch.no_grad():
                    model(x, training=False)

            guarded(results, f"forward/{name}/{batch}", lambda c=call, w=warmup, r=runs: median_seconds(c, w, r))
        del model
        keras.backend.clear_session()
    return results


WORKERS = {"tf": run_tf, "torch": run_torch, "keras_torch": run_keras_torch}


def main(argv: list[str]) -> int:
    kind, config = argv[0], json.loads(argv[1])
    results = WORKERS[kind](config)
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main(sys.argv[1:]))
