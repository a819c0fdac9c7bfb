"""The ONNX-input row of `make bench`: the same ResNet50 .onnx file (tf2onnx's export, made by
run.py's ONNX route) converted by `tf2torch convert ResNet50.onnx` and by onnx2torch.

    python bench/bench_onnx.py [--threads 2] [--repeats 3]    # this row alone (run.py calls it too)

Measures, each converter in fresh processes: conversion wall time (median of --repeats, incl.
Python start-up), eval forward at batch 1 and 8 (median, same NHWC input), and the trainable
fraction: elements of trainable parameters over the elements of the file's float initializers
that are weights (all but BatchNorm's running mean / variance, which are statistics).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run  # bench/run.py: models, environment, timing helpers

MODEL = "ResNet50"

# One worker process: `module` is which converter's module to time.
WORKER = """
import json, sys, time
from pathlib import Path
import numpy as np, onnx, torch
kind, onnx_path, out, threads, batches, warmup, runs = sys.argv[1:8]
threads, warmup, runs = int(threads), int(warmup), int(runs)
torch.set_num_threads(threads)
torch.set_num_interop_threads(threads)
if kind == "onnx2torch":
    sys.path.insert(0, sys.argv[8])  # bench/_stubs: stand-in torchvision.ops
    import onnx2torch
    module = onnx2torch.convert(onnx_path).eval()
else:
    sys.path.insert(0, str(Path(sys.argv[8]).parent))
    from workers import load_generated
    module = load_generated(Path(out)).eval()
graph = onnx.load(onnx_path).graph
stats = {name for n in graph.node if n.op_type == "BatchNormalization" for name in n.input[3:5]}
weights = sum(int(np.prod(t.dims)) for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT and t.name not in stats)
trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
result = {"trainable_fraction": trainable / weights, "parameters": sum(p.numel() for p in module.parameters()),
          "buffers": sum(b.numel() for b in module.buffers())}
shape = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim][1:]
for batch in map(int, batches.split(",")):
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((batch, *shape)).astype(np.float32))
    n = runs * (2 if batch == 1 else 1)
    times = []
    with torch.inference_mode():
        for i in range(warmup + n):
            start = time.perf_counter()
            module(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    result[f"forward/{batch}"] = sorted(times)[len(times) // 2]
print(json.dumps(result))
"""


def convert_times(onnx_path: Path, out: Path, env: dict, repeats: int) -> dict:
    """Wall time of `tf2torch convert X.onnx` and of an onnx2torch.convert process (medians)."""
    exe = shutil.which("tf2torch", path=str(Path(sys.executable).parent)) or "tf2torch"
    times: dict[str, list[float]] = {"tf2torch": [], "onnx2torch": []}
    for _ in range(repeats):  # alternately, so both see the same machine load
        seconds, proc = run.timed_run([exe, "convert", str(onnx_path), "-o", str(out)], env)
        if proc.returncode != 0:
            return {"error": "tf2torch: " + run.last_error_line(proc.stderr)}
        times["tf2torch"].append(seconds)
        seconds, proc = run.timed_run([sys.executable, "-c", run.ONNX2TORCH_CONVERT, str(onnx_path), str(run.STUBS)], env)
        if proc.returncode != 0:
            return {"error": "onnx2torch: " + run.last_error_line(proc.stderr)}
        times["onnx2torch"].append(seconds)
    return {f"convert/{kind}": statistics.median(values) for kind, values in times.items()}


def forward(kind: str, onnx_path: Path, out: Path, env: dict, threads: int, batches: list[int], warmup: int,
            runs: int) -> dict:
    args = [kind, str(onnx_path), str(out), str(threads), ",".join(map(str, batches)), str(warmup), str(runs),
            str(run.STUBS if kind == "onnx2torch" else BENCH / "workers.py")]
    proc = subprocess.run([sys.executable, "-c", WORKER, *args], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": run.last_error_line(proc.stderr)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(threads: int = 2, repeats: int = 3, batches: tuple[int, ...] = (1, 8), warmup: int = 3,
            runs: int = 10, worker_env=None) -> dict:
    """The row's figures; the ONNX file comes from run.py's ONNX route (built if missing).
    `worker_env(threads)` is run.py's (with its --omp-wait-policy / --malloc-heap settings)."""
    env = (worker_env or run.worker_env)(threads)
    onnx_path = run.CACHE / "onnx" / f"{MODEL}.onnx"
    if not onnx_path.exists():
        run.build_models([MODEL], threads)
        run.convert_onnx_route([MODEL], threads, 1, timed_model=None)
    out = run.CACHE / "tf2torch_onnx" / MODEL
    row = convert_times(onnx_path, out, env, repeats)
    if "error" in row:
        return row
    for _ in range(repeats):
        for kind in ("tf2torch", "onnx2torch"):
            row.setdefault(kind, []).append(forward(kind, onnx_path, out, env, threads, list(batches), warmup, runs))
    for kind in ("tf2torch", "onnx2torch"):
        done = [r for r in row.pop(kind) if "error" not in r]
        if not done:
            return {"error": f"{kind} forward failed"}
        for key in done[0]:
            row[f"{key}/{kind}" if key.startswith("forward") else f"{kind}/{key}"] = statistics.median(r[key] for r in done)
    return row


def table(row: dict, batches: tuple[int, ...] = (1, 8)) -> list[str]:
    """The markdown section for results.md."""
    lines = [f"## ONNX input: {MODEL}.onnx (tf2onnx's export) -> PyTorch, tf2torch vs onnx2torch", ""]
    if "error" in row:
        return lines + [f"skipped: {row['error']}", ""]
    lines += ["| | tf2torch | onnx2torch | tf2torch / onnx2torch |", "|---|---|---|---|"]
    pairs = [("conversion wall time (s)", "convert/tf2torch", "convert/onnx2torch", 1.0, ".2f")]
    pairs += [(f"eval forward, batch {b} (ms)", f"forward/{b}/tf2torch", f"forward/{b}/onnx2torch", 1000.0, ".1f")
              for b in batches]
    for label, ours, theirs, unit, fmt in pairs:
        a, b = row[ours] * unit, row[theirs] * unit
        lines.append(f"| {label} | {a:{fmt}} | {b:{fmt}} | {a / b:.2f}x |")
    lines.append(f"| trainable fraction of the file's weights | {row['tf2torch/trainable_fraction']:.2f} | "
                 f"{row['onnx2torch/trainable_fraction']:.2f} | |")
    return lines + ["", "Both read the same .onnx file; the tf2onnx export itself is not counted.", ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    row = measure(args.threads, args.repeats, runs=args.runs)
    print("\n".join(table(row)))
    print(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
