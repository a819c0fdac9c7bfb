"""Forward time of a BERT-style encoder (keras_hub BertBackbone): tf2torch vs TensorFlow
(tf.function) vs Keras 3 on the torch backend. Batch 8, 128 tokens, same thread count.

    .venv/bin/python bench/bench_bert.py [--threads 2] [--layers 4] [--hidden 256] [--runs 20] [--rounds 3]

Each framework runs in its own subprocess (thread pools are process-wide). Prints the median
forward time of each and the ratios tf2torch / other (target: <= 1.0x TensorFlow).

`--omp-passive` runs every worker with OMP_WAIT_POLICY=PASSIVE: on a machine that other jobs
keep busy, OpenMP's default busy-waiting makes every torch op wait for descheduled threads
(measured 5x slower per op with 2 threads on a loaded 2-core machine). The default leaves it
unset, which is right on an idle machine.
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

BATCH, STEPS = 8, 128


def inputs(vocab: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    pad = np.ones((BATCH, STEPS), "int32")
    pad[1::2, STEPS - 40:] = 0  # half the rows right-padded
    return {
        "padding_mask": pad,
        "segment_ids": (np.arange(STEPS)[None] >= STEPS // 2).astype("int32").repeat(BATCH, 0),
        "token_ids": (rng.integers(1, vocab, (BATCH, STEPS)) * pad).astype("int32"),
    }


def timed(fn, runs: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker(kind: str, path: str, threads: int, runs: int, vocab: int) -> float:
    data = inputs(vocab)
    if kind == "tensorflow":
        import keras
        import keras_hub
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        model = keras.saving.load_model(path, compile=False)
        tensors = {k: tf.constant(v) for k, v in data.items()}
        forward = tf.function(lambda x: model(x, training=False))
        return timed(lambda: [t.numpy() for t in forward(tensors).values()], runs)
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    if kind == "keras_torch":
        import keras
        import keras_hub  # noqa: F401

        model = keras.saving.load_model(path, compile=False)
        tensors = {k: torch.from_numpy(v) for k, v in data.items()}
        with torch.no_grad():
            return timed(lambda: model(tensors, training=False), runs)
    import tf2torch

    result = tf2torch.convert(path)
    module = result.module.eval()
    if kind == "tf2torch_optimized":
        module = tf2torch.optimize_for_inference(module)
    args = [torch.from_numpy(data[n]) for n in result.graph.input_names]
    with torch.inference_mode():
        return timed(lambda: module(*args), runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--omp-passive", action="store_true",
                        help="OMP_WAIT_POLICY=PASSIVE for every worker (use on a loaded machine)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps({"seconds": worker(args.worker, args.path, args.threads, args.runs, args.vocab)}))
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory(prefix="bench-bert-") as tmp:
        path = str(Path(tmp) / "bert.keras")
        build = (
            "import os, sys; os.environ['KERAS_BACKEND'] = 'tensorflow'\n"
            "import keras_hub\n"
            f"keras_hub.models.BertBackbone(vocabulary_size={args.vocab}, num_layers={args.layers}, "
            f"num_heads={args.heads}, hidden_dim={args.hidden}, intermediate_dim={4 * args.hidden}, "
            f"max_sequence_length={STEPS}).save(sys.argv[1])\n"
        )
        subprocess.run([sys.executable, "-c", build, path], check=True, env={**os.environ, "KERAS_BACKEND": "tensorflow"})
        # Rounds interleave the frameworks, so a busy moment of the machine hits all of them;
        # each framework's best (lowest) median over the rounds is reported.
        samples: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for kind, backend in (("tf2torch", "tensorflow"), ("tf2torch_optimized", "tensorflow"),
                                  ("tensorflow", "tensorflow"), ("keras_torch", "torch")):
                env = {**os.environ, "KERAS_BACKEND": backend, "OMP_NUM_THREADS": str(args.threads),
                       "MKL_NUM_THREADS": str(args.threads)}
                if args.omp_passive:
                    env["OMP_WAIT_POLICY"] = "PASSIVE"
                cmd = [sys.executable, __file__, "--worker", kind, "--path", path, "--threads", str(args.threads),
                       "--runs", str(args.runs), "--vocab", str(args.vocab)]
                out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
                samples.setdefault(kind, []).append(json.loads(out.strip().splitlines()[-1])["seconds"])
        results = {kind: min(values) for kind, values in samples.items()}
    print(f"BERT-style encoder: {args.layers} layers, hidden {args.hidden}, {args.heads} heads, "
          f"batch {BATCH} x {STEPS} tokens, {args.threads} threads, best of {args.rounds} rounds x median of {args.runs} runs")
    print(f"{'framework':<26} {'forward ms':>11} {'tf2torch / it':>14}")
    for kind, label in (("tf2torch", "tf2torch (torch)"), ("tf2torch_optimized", "+ optimize_for_inference"),
                        ("tensorflow", "TensorFlow tf.function"), ("keras_torch", "Keras 3 on torch")):
        ratio = results["tf2torch"] / results[kind]
        print(f"{label:<26} {results[kind] * 1e3:>11.2f} {ratio:>13.2f}x")
    rounds = ", ".join(f"{k}: " + "/".join(f"{v * 1e3:.0f}" for v in values) for k, values in samples.items())
    print(f"every round (ms): {rounds}")
    for kind, label in (("tf2torch", "default module"), ("tf2torch_optimized", "optimize_for_inference")):
        ratio = results[kind] / results["tensorflow"]
        verdict = "meets" if ratio <= 1.0 else "MISSES"
        print(f"target tf2torch <= 1.0x TensorFlow, {label}: {ratio:.2f}x, {verdict}")


if __name__ == "__main__":
    main()
