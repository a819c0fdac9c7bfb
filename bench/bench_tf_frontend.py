"""Benchmark of the op-level TF frontend: conversion time and eval forward time of the
converted module vs TensorFlow (the SavedModel signature) and vs tf2onnx + onnx2torch.

    .venv-bench/bin/python bench/bench_tf_frontend.py [--threads 2] [--batch 8] [--quick]

Models (SavedModels built into bench/.cache/tf_frontend/): a tf.Module MLP, a tf.Module conv
net, a subclassed Keras model (custom layer, BatchNorm, residual), and keras.applications
ResNet50 at 64x64 (weights=None). Every framework gets the same thread count (torch
intra-op threads; TF intra- and inter-op threads). The tf2onnx column is skipped when
tf2onnx / onnx2torch are not installed (they are in .venv-bench). TensorFlow runs in this
process; each torch module is timed in a fresh subprocess (no TF thread pools spinning next to
it). Times are medians of repeated runs after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache" / "tf_frontend"
sys.path.insert(0, str(BENCH.parent / "src"))


def build_models(tf, keras, names: list[str]) -> dict[str, tuple[Path, tuple]]:
    import numpy as np

    rng = np.random.default_rng(0)

    def var(*shape, name):
        return tf.Variable(rng.standard_normal(shape).astype(np.float32) * 0.3, name=name)

    class MLP(tf.Module):
        def __init__(self):
            super().__init__()
            self.w1, self.b1 = var(256, 512, name="l1/w"), var(512, name="l1/b")
            self.w2, self.b2 = var(512, 10, name="l2/w"), var(10, name="l2/b")

        @tf.function(input_signature=[tf.TensorSpec((None, 256), tf.float32)])
        def __call__(self, x):
            return tf.nn.softmax(tf.matmul(tf.nn.relu(tf.matmul(x, self.w1) + self.b1), self.w2) + self.b2)

    class ConvNet(tf.Module):
        def __init__(self):
            super().__init__()
            self.k1, self.c1 = var(3, 3, 3, 32, name="conv1/kernel"), var(32, name="conv1/bias")
            self.k2, self.c2 = var(3, 3, 32, 64, name="conv2/kernel"), var(64, name="conv2/bias")
            self.w, self.b = var(64, 10, name="fc/kernel"), var(10, name="fc/bias")

        @tf.function(input_signature=[tf.TensorSpec((None, 64, 64, 3), tf.float32)])
        def __call__(self, x):
            x = tf.nn.relu(tf.nn.conv2d(x, self.k1, 2, "SAME") + self.c1)
            x = tf.nn.max_pool2d(x, 2, 2, "SAME")
            x = tf.nn.relu(tf.nn.conv2d(x, self.k2, 1, "SAME") + self.c2)
            return tf.matmul(tf.reduce_mean(x, axis=[1, 2]), self.w) + self.b

    class Scale(keras.layers.Layer):
        def build(self, shape):
            self.alpha = self.add_weight(shape=(shape[-1],), initializer="ones", name="alpha")

        def call(self, x):
            return x * tf.sigmoid(self.alpha) + tf.sin(x)

    class ResidualNet(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(32, 3, padding="same")
            self.bn = keras.layers.BatchNormalization()
            self.conv2 = keras.layers.Conv2D(32, 3, padding="same")
            self.scale = Scale()
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.head = keras.layers.Dense(10)

        def call(self, x):
            y = keras.activations.relu(self.bn(self.conv(x)))
            return self.head(self.pool(self.scale(y + self.conv2(y))))

    builders = {
        "tf.Module MLP": (lambda: MLP(), (256,)),
        "tf.Module ConvNet": (lambda: ConvNet(), (64, 64, 3)),
        "subclassed Keras": (lambda: ResidualNet(), (64, 64, 3)),
        "ResNet50 64x64": (lambda: keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3)), (64, 64, 3)),
    }
    out = {}
    for name in names:
        make, shape = builders[name]
        path = CACHE / name.replace(" ", "_").replace(".", "")
        if not (path / "saved_model.pb").is_file():
            model = make()
            if isinstance(model, keras.Model):
                model(np.zeros((1, *shape), np.float32))
                model.export(str(path), verbose=False)
            else:
                tf.saved_model.save(model, str(path))
        out[name] = (path, shape)
    return out


def median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tf2onnx_export(tf, path: Path, shape: tuple, onnx_path: Path) -> float | None:
    """tf2onnx: SavedModel signature -> ONNX file; its time, or None if tf2onnx is missing."""
    try:
        import tf2onnx
    except ImportError:
        return None
    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    spec = [tf.TensorSpec((None, *shape), tf.float32, name=next(iter(fn.structured_input_signature[1])))]
    start = time.perf_counter()
    tf2onnx.convert.from_function(tf.function(fn), input_signature=spec, opset=17, output_path=str(onnx_path))
    return time.perf_counter() - start


WORKER = r"""
import importlib.util, json, statistics, sys, time
import numpy as np, torch
kind, target, batch, shape, threads, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), eval(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
torch.set_num_threads(threads)
x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
convert_seconds = None
if kind == "tf2torch":
    spec = importlib.util.spec_from_file_location("model", target + "/model.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    module = mod.load_model()
    if x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
else:
    sys.path.insert(0, sys.argv[7])  # bench/_stubs: stand-in torchvision.ops for onnx2torch
    import onnx2torch
    start = time.perf_counter()
    module = onnx2torch.convert(target)
    convert_seconds = time.perf_counter() - start
module.eval()
xt = torch.from_numpy(np.ascontiguousarray(x))
times = []
with torch.inference_mode():
    for i in range(repeats + 2):
        start = time.perf_counter()
        module(xt)
        if i >= 2:
            times.append(time.perf_counter() - start)
print(json.dumps({"forward": statistics.median(times), "convert": convert_seconds}))
"""


def torch_worker(kind: str, target: Path, shape: tuple, args: argparse.Namespace) -> dict | None:
    """Time a torch module in a fresh process (no TensorFlow thread pools next to it)."""
    import json
    import subprocess

    cmd = [sys.executable, "-c", WORKER, kind, str(target), str(args.batch), repr(tuple(shape)), str(args.threads),
           str(args.repeats), str(BENCH / "_stubs")]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        print(f"  {kind} worker failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="leave out ResNet50")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    import torch

    torch.set_num_threads(args.threads)
    import tf2torch

    names = ["tf.Module MLP", "tf.Module ConvNet", "subclassed Keras"] + ([] if args.quick else ["ResNet50 64x64"])
    models = build_models(tf, keras, names)
    rows = []
    work = Path(tempfile.mkdtemp(prefix="tf2torch-bench-"))
    for name, (path, shape) in models.items():
        x = np.random.default_rng(0).standard_normal((args.batch, *shape)).astype(np.float32)
        start = time.perf_counter()
        result = tf2torch.convert(str(path))
        t_convert = time.perf_counter() - start
        out_dir = work / path.name
        result.save(out_dir)
        loaded = tf.saved_model.load(str(path))
        fn = loaded.signatures["serving_default"]
        key = next(iter(fn.structured_input_signature[1]))
        xtf = tf.constant(x)
        t_tf = median_time(lambda fn=fn, key=key, xtf=xtf: fn(**{key: xtf}), args.repeats)
        ours = torch_worker("tf2torch", out_dir, shape, args)
        t_onnx_convert = t_onnx = None
        t_export = tf2onnx_export(tf, path, shape, work / f"{path.name}.onnx")
        if t_export is not None:
            theirs = torch_worker("onnx2torch", work / f"{path.name}.onnx", shape, args)
            if theirs is not None:
                t_onnx_convert, t_onnx = t_export + theirs["convert"], theirs["forward"]
        rows.append((name, t_convert, t_onnx_convert, t_tf, ours["forward"] if ours else float("nan"), t_onnx))

    print(f"threads={args.threads} batch={args.batch} repeats={args.repeats} (median seconds; ratio = other / tf2torch)")
    header = f"{'model':<20} {'convert':>9} {'tf2onnx+o2t':>12} {'ratio':>6} | {'fwd TF':>9} {'fwd ours':>9} " \
             f"{'TF/ours':>7} {'fwd o2t':>9} {'o2t/ours':>8}"
    print(header)
    print("-" * len(header))
    for name, c, oc, ttf, tours, tonnx in rows:
        oc_text = f"{oc:12.3f} {oc / c:6.2f}" if oc is not None else f"{'n/a':>12} {'':>6}"
        on_text = f"{tonnx * 1e3:8.2f}ms {tonnx / tours:8.2f}" if tonnx is not None else f"{'n/a':>9} {'':>8}"
        print(f"{name:<20} {c:9.3f} {oc_text} | {ttf * 1e3:7.2f}ms {tours * 1e3:7.2f}ms {ttf / tours:7.2f} {on_text}")


if __name__ == "__main__":
    main()
