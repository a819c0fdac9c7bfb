"""Forward time of sequence models: tf2torch vs TensorFlow (tf.function, in-process) vs Keras 3
on the torch backend (subprocess, KERAS_BACKEND=torch). Same thread count everywhere.

Models (random weights; token ids right-padded to varying lengths):
  lstm_classifier         Embedding(20000, 128) -> LSTM(128) -> Dense(2), batch 32, 128 steps
  lstm_classifier_masked  the same with Embedding(mask_zero=True)
  bigru_tagger            Embedding(20000, 128, mask_zero=True) -> Bidirectional(GRU(128,
                          return_sequences)) -> Dense(17), batch 32, 128 steps

    .venv/bin/python bench/bench_sequence.py [--threads 2] [--runs 20] [--rounds 3] [--omp-wait-policy default|PASSIVE]

torch's OpenMP pool spin-waits by default (OMP_WAIT_POLICY unset): on a machine with more
busy processes than cores that makes every small op wait for descheduled spinning threads
(a 2-thread nn.LSTM went from 7 ms to seconds here). On such a machine pass
`--omp-wait-policy PASSIVE` (applied to both torch runs; TensorFlow's Eigen pool does not read
it). The default leaves the variable unset: on an idle machine PASSIVE makes torch ~4x slower.

Prints the median forward time of each framework (TensorFlow and tf2torch: the best of
--rounds alternating rounds) and the ratios tf2torch / other (target: <= 1.0x TensorFlow).
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BATCH, STEPS, VOCAB = 32, 128, 20000
MODELS = ("lstm_classifier", "lstm_classifier_masked", "bigru_tagger")


def build(keras, name: str):
    inp = keras.Input((None,), dtype="int32", name="tokens")
    masked = name != "lstm_classifier"
    x = keras.layers.Embedding(VOCAB, 128, mask_zero=masked)(inp)
    if name.startswith("lstm"):
        x = keras.layers.LSTM(128)(x)
        out = keras.layers.Dense(2)(x)
    else:
        x = keras.layers.Bidirectional(keras.layers.GRU(128, return_sequences=True))(x)
        out = keras.layers.Dense(17)(x)
    return keras.Model(inp, out, name=name)


def token_ids():
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(1, VOCAB, (BATCH, STEPS)).astype("int32")
    lengths = rng.integers(STEPS // 4, STEPS + 1, BATCH)
    ids[np.arange(STEPS)[None, :] >= lengths[:, None]] = 0
    return ids


def timed(fn, runs: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def keras_torch_worker(path: str, threads: int, runs: int) -> None:
    """Run in a subprocess with KERAS_BACKEND=torch: prints the median time in seconds."""
    import keras
    import torch

    torch.set_num_threads(threads)
    model = keras.saving.load_model(path, compile=False)
    ids = torch.from_numpy(token_ids())
    with torch.no_grad():
        seconds = timed(lambda: model(ids, training=False), runs)
    print(json.dumps({"seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best round median counts")
    parser.add_argument("--omp-wait-policy", default="default", help="PASSIVE, ACTIVE or 'default' (unset)")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "PATH", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        keras_torch_worker(args.worker[1], int(args.worker[2]), args.runs)
        return

    os.environ["KERAS_BACKEND"] = "tensorflow"
    if args.omp_wait_policy != "default":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy  # before torch is imported
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    import torch

    import tf2torch

    torch.set_num_threads(args.threads)
    ids = token_ids()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            keras.utils.set_random_seed(0)
            model = build(keras, name)
            path = str(Path(tmp) / f"{name}.keras")
            model.save(path)
            forward = tf.function(lambda x, m=model: m(x, training=False))
            tf_ids = tf.constant(ids)
            result = tf2torch.convert(path)
            module = result.module.eval()
            torch_ids = torch.from_numpy(ids)
            tf_times, our_times = [], []
            with torch.no_grad():
                # Alternate the two in-process frameworks over several rounds and keep each
                # one's best round median: bursts of load from other processes hit both alike.
                for _ in range(args.rounds):
                    tf_times.append(timed(lambda f=forward, t=tf_ids: f(t), args.runs))
                    our_times.append(timed(lambda m=module, t=torch_ids: m(t), args.runs))
                error = float(np.abs(module(torch_ids).numpy() - np.asarray(forward(tf_ids))).max())
            tf_seconds, ours_seconds = min(tf_times), min(our_times)
            env = dict(os.environ, KERAS_BACKEND="torch")
            proc = subprocess.run(
                [sys.executable, __file__, "--runs", str(args.runs), "--worker", "keras_torch", path, str(args.threads)],
                env=env, capture_output=True, text=True, check=False,
            )
            lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
            kt_seconds = json.loads(lines[-1])["seconds"] if lines else float("nan")
            rows.append((name, ours_seconds, tf_seconds, kt_seconds, error))

    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(f"Sequence models, batch {BATCH}, {STEPS} steps, {args.threads} threads, median of {args.runs} runs, "
          f"OMP_WAIT_POLICY={policy}")
    header = f"{'model':<24}{'tf2torch ms':>13}{'TF ms':>10}{'K3-torch ms':>13}{'vs TF':>8}{'vs K3-torch':>13}{'max abs err':>13}"
    print(header)
    print("-" * len(header))
    for name, ours, tf_s, kt, err in rows:
        print(f"{name:<24}{ours * 1e3:>13.2f}{tf_s * 1e3:>10.2f}{kt * 1e3:>13.2f}{ours / tf_s:>7.2f}x{ours / kt:>12.2f}x{err:>13.2e}")


if __name__ == "__main__":
    main()
