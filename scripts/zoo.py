"""Convert every keras.applications model and write docs/zoo.md (`make zoo`).

Each model is built with weights=None, classifier_activation=None, its constant-initialised
weights perturbed and its BatchNorm statistics set from one training-mode pass (momentum 0)
over a random batch (tests/e2e/test_applications.py: build_application), saved as .keras and
as legacy .h5, converted from both files, and compared with TensorFlow in eval mode (NCHW
input on the torch side). For a model over the bound (max abs error > 1e-4 x max |logit|)
the script also measures, on the same input:

- the converted module in float64 against TensorFlow (fp32), as issue 6 asks;
- Keras 3 on the torch backend (a subprocess loading the same .keras file) against TensorFlow;
- the exact result: the converted module in float64 against the same Keras model rebuilt in
  float64 (TF float64), and TensorFlow fp32's own distance from that exact result.

Forward times are a simple median of N eval runs at batch 8 with the same thread count for
TensorFlow (tf.function) and the converted module: indicative only; bench/ has the rigorous
figures. Every model runs in its own subprocess (memory), one after the other.

    python scripts/zoo.py                      # all 40 -> docs/zoo.md
    python scripts/zoo.py ResNet50 VGG16       # a subset (docs/zoo.md lists only those)
    python scripts/zoo.py --rows a.jsonl M1 M2 ...; python scripts/zoo.py --from-rows a.jsonl b.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOUND = 1e-4
# Threads per framework (ZOO_THREADS, default 2, like bench/). On a shared, oversubscribed
# machine use 1: torch's 2-thread OpenMP regions then stall at every barrier (20-150x on
# many-small-op models). But with 1 thread torch computes 1x1 convolutions at batch < 16 with
# its own im2col/BLAS path instead of oneDNN (its heuristic: "THNN is faster single-threaded"),
# and that BLAS is MKL, slow on AMD CPUs: DenseNet121 spends 54% of its time there.
THREADS = int(os.environ.get("ZOO_THREADS", "2"))
TIMING_BATCH = 8
FIDELITY_BATCH = 2
TIMING_RUNS = 3

KERAS_TORCH_SCRIPT = """
import os, sys
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np, torch, keras
torch.set_num_threads(int(sys.argv[3]))
x = np.load(sys.argv[1])["x"]
model = keras.saving.load_model(sys.argv[2], compile=False)
with torch.no_grad():
    y = model(x, training=False)
np.savez(sys.argv[4], y=keras.ops.convert_to_numpy(y))
"""


def keras_torch_logits(x, keras_path: Path, work: Path):
    """Keras 3 on the torch backend, on the same file and input, in a fresh process."""
    import numpy as np

    np.savez(work / "x.npz", x=x)
    subprocess.run([sys.executable, "-c", KERAS_TORCH_SCRIPT, str(work / "x.npz"), str(keras_path), str(THREADS),
                    str(work / "y.npz")], check=True, env=dict(os.environ, KERAS_BACKEND="torch"), capture_output=True)
    return np.load(work / "y.npz")["y"]


def rel(a, b, scale) -> float:
    import numpy as np

    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))) / scale)


def median_times(fns, n: int) -> list[float]:
    """Median wall time of each function, calls interleaved so that both see the same load."""
    import statistics

    for fn in fns:
        fn()  # warm-up
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(n):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def run_one(name: str, size: int, work: Path) -> dict:
    """Everything for one model; runs in its own process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    import numpy as np
    import torch

    torch.set_num_threads(THREADS)
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]
    from test_applications import build_application, exact_logits

    import tf2torch

    row: dict = {"model": name, "size": size}
    model, sample = build_application(name, size)
    row["params"] = int(model.count_params())
    x = sample(FIDELITY_BATCH, 1)
    reference = np.asarray(model(x, training=False))
    scale = float(np.max(np.abs(reference)))
    row["max_logit"] = scale
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    for suffix in (".keras", ".h5"):
        path = work / f"{name}{suffix}"
        model.save(str(path))
        start = time.perf_counter()
        result = tf2torch.convert(str(path))
        row[f"convert_s{suffix}"] = time.perf_counter() - start
        module = result.module.eval()
        with torch.no_grad():
            out = module(xt).numpy()
        row[f"abs{suffix}"] = float(np.max(np.abs(out - reference)))
        row[f"rel{suffix}"] = row[f"abs{suffix}"] / scale
        if suffix == ".keras":
            keras_module = module
            row["permutes"] = result.source_code.split("def forward", 1)[1].count(".permute(")
            row["lines"] = result.source_code.count("\n")
            row["flat_lines"] = tf2torch.convert(str(path), structure="flat").source_code.count("\n")
    row["ok"] = max(row["rel.keras"], row["rel.h5"]) <= BOUND

    if not row["ok"]:
        with torch.no_grad():
            out64 = keras_module.double()(xt.double()).numpy()
        keras_module.float()
        row["rel_fp64_vs_tf"] = rel(out64, reference, scale)
        row["rel_keras_torch"] = rel(keras_torch_logits(x, work / f"{name}.keras", work), reference, scale)
        exact = exact_logits(name, size, model, x)  # the same Keras model in float64
        row["rel_fp64_vs_tf64"] = rel(out64, exact, scale)
        row["rel_fp32_vs_tf64"] = rel(np.asarray(keras_module(xt).detach()), exact, scale)
        row["rel_tf32_vs_tf64"] = rel(reference, exact, scale)

    xb = sample(TIMING_BATCH, 2)
    tf_fn = tf.function(lambda t: model(t, training=False))
    xb_tf = tf.constant(xb)
    xb_t = torch.from_numpy(np.ascontiguousarray(xb.transpose(0, 3, 1, 2)))

    def torch_forward():
        with torch.no_grad():
            keras_module(xb_t)

    row["threads"] = THREADS
    row["load_average"] = os.getloadavg()[0]  # the machine's 1-minute load when timing began
    row["tf_forward_s"], row["torch_forward_s"] = median_times([lambda: tf_fn(xb_tf).numpy(), torch_forward], TIMING_RUNS)
    return row


def markdown(rows: list[dict], size_note: str) -> str:
    ok = sum(r.get("ok", False) for r in rows)
    measured = sum("error" not in r for r in rows)
    rounding = [r for r in rows if not r.get("ok", False) and "error" not in r]
    lines = [
        "# keras.applications zoo",
        "",
        "Generated by `make zoo` (`scripts/zoo.py`); do not edit by hand.",
        "",
        (f"Every `keras.applications` model ({len(rows)} here) built with `weights=None, "
        "classifier_activation=None`, its constant-initialised weights perturbed, BatchNorm moving "
        "statistics set by one training-mode pass with momentum 0 over 16 random images (pixels in "
        "[0, 255] for the models that preprocess themselves, standard normal otherwise), saved as "
        "`.keras` and as legacy `.h5`, converted from each file with no user help and compared with "
        f"TensorFlow in eval mode on a batch of {FIDELITY_BATCH} (NCHW input on the torch side). "
        f"{size_note}"),
        "",
        (f"Bound: max abs error on the logits <= 1e-4 x max |logit|. **{ok}/{measured} measured models within "
         f"the bound** ({len(rows)} listed); "
        f"{len(rounding)} over it (the rounding evidence for those is below)."),
        "",
        ("| model | params | input | max abs err (.keras) | rel (.keras) | rel (.h5) | status | "
        "convert .keras (s) | convert .h5 (s) | forward: TF (s) | forward: tf2torch / TF | threads | load |"),
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | | {r['size']} | | | | ERROR: {r['error']} | | | | | | |")
            continue
        status = "OK" if r["ok"] else "rounding (see below)"
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['size']}x{r['size']} | {r['abs.keras']:.2e} | {r['rel.keras']:.2e} "
            f"| {r['rel.h5']:.2e} | {status} | {r['convert_s.keras']:.2f} | {r['convert_s.h5']:.2f} "
            f"| {r['tf_forward_s']:.3f} | {r['torch_forward_s'] / r['tf_forward_s']:.2f}x | {r.get('threads', 2)} | {_load(r)} |"
        )
    lines += [
        "",
        "## model.py: one class per repeated block",
        "",
        "Lines of the generated model.py, structured (the default) and with `--flat`.",
        "",
        "| model | flat | structured | shorter |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['model']} | {r['flat_lines']} | {r['lines']} | {r['flat_lines'] / r['lines']:.2f}x |"
              for r in rows if "lines" in r]
    if rounding:
        lines += [
            "",
            "## Models over the bound: fp32 rounding, not a conversion error",
            "",
            ("All errors relative to max |logit| of TensorFlow fp32, on the same input. "
            "*fp64 module* is the converted module run with `module.double()` on the float64 input; "
            "*Keras-3-torch* is Keras 3 on the torch backend loading the same `.keras` file; "
            "*TF fp64* is the same Keras model rebuilt with the float64 dtype policy and the same "
            "weights (the exact result)."),
            "",
            ("| model | tf2torch fp32 vs TF | fp64 module vs TF | Keras-3-torch vs TF | fp64 module vs TF fp64 "
            "| tf2torch fp32 vs TF fp64 | TF fp32 vs TF fp64 |"),
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rounding:
            lines.append(
                f"| {r['model']} | {r['rel.keras']:.2e} | {r['rel_fp64_vs_tf']:.2e} | {r['rel_keras_torch']:.2e} "
                f"| {r['rel_fp64_vs_tf64']:.1e} | {r['rel_fp32_vs_tf64']:.2e} | {r['rel_tf32_vs_tf64']:.2e} |"
            )
        lines += [
            "",
            ("Reading: *fp64 module vs TF fp64* (~1e-12 and below) shows the conversion is exact; what "
            "remains is fp32 rounding, which TensorFlow's own fp32 result carries too (last column, "
            "same order as ours). Where TensorFlow fp32 is itself far from the exact result, the fp64 "
            "module cannot be closer to TensorFlow fp32 than our fp32 module is (both fp32 runs use "
            "similar kernels and round alike), so the exact comparison is the decisive one. One batch "
            "of 2 images is a noisy sample of rounding: [rounding.md](rounding.md) "
            "(`scripts/rounding_check.py`) has per-image statistics over 16 images."),
        ]
    lines += [
        "",
        (f"Forward times: median of {TIMING_RUNS} eval runs at batch {TIMING_BATCH} after a warm-up, TensorFlow and "
        "tf2torch calls interleaved so both see the same machine load, the same thread count for both (the "
        "*threads* column; TensorFlow: `tf.function`, intra/inter-op threads; torch: `set_num_threads`, "
        "`no_grad`), the default generated code (BatchNorm unfused, contiguous NCHW), on a shared machine: "
        "**indicative only**. The *load* column is the 1-minute load average when the timing began (2 cores); "
        "rows timed with 2 threads on a machine loaded far above 2 cores are not a speed figure: torch's "
        "OpenMP regions stall at every barrier when their threads are descheduled, which inflates models made "
        "of many small ops (DenseNet, EfficientNet) by an order of magnitude. "
        "The rigorous forward / training-step figures are in `bench/`."),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model names (default: all keras.applications models)")
    parser.add_argument("--size", type=int, default=96, help="input height and width (default 96)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "zoo.md"))
    parser.add_argument("--rows", help="also append each model's figures to this JSON-lines file")
    parser.add_argument("--from-rows", nargs="+", help="write the report from JSON-lines files of earlier runs")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            row = run_one(args.one, args.size, Path(tmp))
        Path(args.json).write_text(json.dumps(row))
        return 0

    if args.from_rows:
        rows = [json.loads(line) for f in args.from_rows for line in Path(f).read_text().splitlines() if line]
        order = {n: i for i, n in enumerate(_all_models())}
        rows = list({r["model"]: r for r in rows}.values())  # a later file's row replaces an earlier one
        done = {r["model"] for r in rows}
        rows += [{"model": n, "size": rows[0]["size"], "error": "not measured: the run stopped before this model"}
                 for n in order if n not in done]
        rows.sort(key=lambda r: order.get(r["model"], len(order)))
        Path(args.out).write_text(markdown(rows, _size_note(rows[0]["size"])))
        print(f"wrote {args.out}")
        return 0
    names = args.models or _all_models()
    rows = []
    if args.rows and Path(args.rows).exists():  # resume: keep the models an earlier run finished
        rows = [json.loads(line) for line in Path(args.rows).read_text().splitlines() if line]
        names = [n for n in names if n not in {r["model"] for r in rows}]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            out = Path(tmp) / f"{name}.json"
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--one", name, "--size", str(args.size), "--json", str(out)],
                                  check=False, capture_output=True, text=True)
            if proc.returncode == 0:
                row = json.loads(out.read_text())
            else:
                row = {"model": name, "size": args.size, "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
            rows.append(row)
            if args.rows:
                with open(args.rows, "a") as f:
                    f.write(json.dumps(row) + "\n")
            print(f"{name}: {json.dumps(row)} ({time.perf_counter() - start:.0f} s)", flush=True)
            Path(args.out).write_text(markdown(rows, _size_note(args.size)))
    print(f"wrote {args.out}")
    return 0 if all(r.get("ok") or "rel_fp64_vs_tf64" in r for r in rows) else 1


def _load(row: dict) -> str:
    load = row.get("load_average")
    return "" if load is None else f"{load:.1f}"


def _size_note(size: int) -> str:
    return (f"Input {size}x{size} for every model (each allows it with weights=None; a uniform size keeps "
            "the run within minutes on 2 cores).")


def _all_models() -> list[str]:
    out = subprocess.run([sys.executable, "-c", ("import keras; print(' '.join(n for n in dir(keras.applications) "
                          "if n[:1].isupper()))")], capture_output=True, text=True, check=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return sorted(out.stdout.split())


if __name__ == "__main__":
    sys.exit(main())
