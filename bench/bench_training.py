"""Training-step time: the generated training loop (tf2torch `training_setup().train_step`, the
code train.py runs) vs Keras `model.fit` on TensorFlow, same model, data, batch and threads.

    .venv/bin/python bench/bench_training.py [--threads 2] [--steps 40] [--rounds 3] [--processes 5]
                                             [--model cnn|mlp] [--torch-compile]

Models: `cnn` = Conv(32)-BN-ReLU-MaxPool-Conv(64)-BN-ReLU-GlobalAvgPool-Dense(10) on 32x32x3
images, batch 64; `mlp` = 784-512-256-10, batch 128. Adam, sparse categorical cross-entropy,
accuracy metric, an L2 kernel regularizer. Each framework runs in its own subprocess (thread
pools are process-wide), after one warm-up epoch (tracing); `--omp-passive` on a loaded machine. Prints
the median time per step of each and the ratio tf2torch / TensorFlow (target <= 1.0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build_model(kind: str):
    import keras

    keras.utils.set_random_seed(0)
    reg = keras.regularizers.L2(1e-4)
    if kind == "cnn":
        inputs = keras.Input((32, 32, 3))
        x = keras.layers.Conv2D(32, 3, padding="same", use_bias=False, kernel_regularizer=reg, name="conv1")(inputs)
        x = keras.layers.BatchNormalization(name="bn1")(x)
        x = keras.layers.ReLU(name="relu1")(x)
        x = keras.layers.MaxPooling2D(name="pool")(x)
        x = keras.layers.Conv2D(64, 3, padding="same", use_bias=False, kernel_regularizer=reg, name="conv2")(x)
        x = keras.layers.BatchNormalization(name="bn2")(x)
        x = keras.layers.ReLU(name="relu2")(x)
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
        outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    else:
        inputs = keras.Input((784,))
        x = keras.layers.Dense(512, activation="relu", kernel_regularizer=reg, name="fc1")(inputs)
        x = keras.layers.Dense(256, activation="relu", name="fc2")(x)
        outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def data(kind: str, steps: int):
    import numpy as np

    rng = np.random.default_rng(0)
    batch = 64 if kind == "cnn" else 128
    shape = (32, 32, 3) if kind == "cnn" else (784,)
    x = rng.normal(size=(steps * batch, *shape)).astype("float32")
    y = rng.integers(0, 10, size=(steps * batch,)).astype("int64")
    return x, y, batch


def worker_tf(args) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    model = build_model(args.model)
    x, y, batch = data(args.model, args.steps)
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)  # warm-up: tracing
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        times.append((time.perf_counter() - start) / args.steps)
    return {"step_seconds": times}


def worker_torch(args) -> dict:
    import torch

    import tf2torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    model = build_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        result = tf2torch.convert(path)
        training = result.training_setup()
    x, y, batch = data(args.model, args.steps)
    perm = result.graph.inputs[0].perm
    xt = torch.from_numpy(x if perm is None else x.transpose(perm).copy())
    yt = torch.from_numpy(y)
    batches = [([xt[i * batch : (i + 1) * batch]], yt[i * batch : (i + 1) * batch]) for i in range(args.steps)]

    forward = torch.compile(result.module) if args.torch_compile else result.module

    def epoch() -> None:
        training.reset_metrics()
        for inputs, target in batches:
            training.train_step(inputs, target, forward=forward)

    epoch()  # warm-up
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        epoch()
        times.append((time.perf_counter() - start) / args.steps)
    return {"step_seconds": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=5, help="worker processes per framework, alternating")
    parser.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    parser.add_argument("--worker", choices=["tf", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--torch-compile", action="store_true", help="run the module through torch.compile")
    parser.add_argument("--omp-passive", action="store_true",
                        help="OMP_WAIT_POLICY=PASSIVE for both workers (use on a loaded machine)")
    args = parser.parse_args()
    if args.worker:
        result = worker_tf(args) if args.worker == "tf" else worker_torch(args)
        print(json.dumps(result))
        return
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "OMP_NUM_THREADS": str(args.threads)}
    if args.omp_passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    # Worker processes alternate (tf, torch, tf, torch, ...): a process's speed varies from one
    # start to the next (up to 2x here for both frameworks, thread placement), so one process
    # each is not a measurement. Each framework's figure is the median over its processes.
    per_process: dict[str, list[float]] = {"tf": [], "torch": []}
    for _ in range(args.processes):
        for name in ("tf", "torch"):
            cmd = [sys.executable, __file__, "--worker", name, "--threads", str(args.threads), "--steps",
                   str(args.steps), "--rounds", str(args.rounds), "--model", args.model]
            cmd += ["--torch-compile"] if args.torch_compile else []
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            times = json.loads(out.strip().splitlines()[-1])["step_seconds"]
            per_process[name].append(statistics.median(times))
    medians = {name: statistics.median(values) for name, values in per_process.items()}
    print(f"model {args.model}, {args.threads} threads, {args.steps} steps x {args.rounds} rounds per process, "
          f"{args.processes} processes each (median per step, then median over processes)")
    for name, values in per_process.items():
        print(f"  {name} per process (ms/step): " + ", ".join(f"{v * 1e3:.2f}" for v in values))
    print(f"  TensorFlow model.fit      {medians['tf'] * 1e3:8.2f} ms/step")
    label = "tf2torch loop (compiled)" if args.torch_compile else "tf2torch train_step loop"
    print(f"  {label:<25} {medians['torch'] * 1e3:8.2f} ms/step")
    print(f"  ratio tf2torch / TensorFlow: {medians['torch'] / medians['tf']:.2f}x (target <= 1.0)")


if __name__ == "__main__":
    main()
