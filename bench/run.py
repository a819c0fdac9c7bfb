"""tf2torch benchmarks: conversion time, eval forward time, training step time, in one run.

    make bench                                   # builds .venv-bench, then runs this file
    make bench-quick                             # --quick: eval forward vs TensorFlow, < 10 min
    .venv-bench/bin/python bench/run.py [--threads 2] [--models ResNet50 ...] [--quick]

Prints the tables and ratios and writes bench/results/results.md and results.json. Every
framework runs in its own subprocess with the same thread count (bench/workers.py); the models
are built once into bench/.cache/ (bench/models.py). See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results"
STUBS = BENCH / "_stubs"
MODELS = ["ResNet50", "MobileNetV2", "EfficientNetB0", "DenseNet121", "ConvNeXtTiny"]
TRAIN_MODELS = ["ResNet50", "MobileNetV2"]
CONVERSION_MODEL = "ResNet50"
ONNX_OPSET = 17

ONNX2TORCH_CONVERT = """
import sys
sys.path.insert(0, sys.argv[2])  # bench/_stubs: stand-in torchvision.ops
import onnx2torch
onnx2torch.convert(sys.argv[1])
"""

# Targets from issue 6 (ratios: tf2torch time / other time).
TARGET_CONVERSION_SPEEDUP = 15.0
TARGET_CONVERSION_SECONDS = 3.0
TARGET_FORWARD_VS_TF = 0.9
TARGET_FORWARD_VS_KERAS_TORCH = 0.35
TARGET_TRAIN_VS_TF = 1.0


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


OMP_WAIT_POLICY: str | None = None  # set from --omp-wait-policy
# --malloc-heap: glibc serves every allocation above 32 MiB (e.g. a batch-8 112x112x96 fp32
# activation) with a fresh mmap, so eager torch page-faults (and the kernel zeroes) each big
# activation on every call; TensorFlow reuses memory through its own allocator. These make
# glibc keep big blocks on its heap for reuse, for every worker alike.
MALLOC_HEAP_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 34), "MALLOC_TRIM_THRESHOLD_": str(1 << 34)}
MALLOC_HEAP = False


def worker_env(threads: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    if OMP_WAIT_POLICY:
        env["OMP_WAIT_POLICY"] = OMP_WAIT_POLICY
    if MALLOC_HEAP:
        env.update(MALLOC_HEAP_ENV)
    env.update({
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KERAS_BACKEND": "tensorflow",
        "PYTHONWARNINGS": "ignore",
    })
    env.update(extra)
    return env


# CPU features that decide which kernels oneDNN (torch) and TensorFlow pick.
CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16")


def cpu_description() -> str:
    """CPU model, core count and the SIMD flags that matter here (Linux: /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    shown = " ".join(f for f in CPU_FLAGS if f in flags) or "unknown"
    return f"{model}, {os.cpu_count()} logical CPUs, flags: {shown}"


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    """Wall time of one subprocess (its CPU time, user + sys, goes to `timed_run.cpu`)."""
    cpu, start = children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    timed_run.cpu = children_cpu_seconds() - cpu
    return wall, proc


def last_error_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


# -- steps ------------------------------------------------------------------------------------


def build_models(models: list[str], threads: int) -> dict:
    log(f"building / loading cached models: {', '.join(models)}")
    proc = subprocess.run([sys.executable, str(BENCH / "models.py"), str(CACHE / "models"), *models],
                          env=worker_env(threads), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"building the models failed:\n{proc.stderr[-3000:]}")
    return {info["model"]: info for info in map(json.loads, proc.stdout.strip().splitlines())}


def convert_tf2torch(models: list[str], threads: int, repeats: int) -> dict:
    """`tf2torch convert NAME.keras -o OUT` as a user runs it: a fresh process each time."""
    exe = shutil.which("tf2torch", path=str(Path(sys.executable).parent)) or "tf2torch"
    results = {}
    for name in models:
        out = CACHE / "tf2torch" / name
        times, cpu, error = [], [], None
        for _ in range(repeats if name == CONVERSION_MODEL else 1):
            seconds, proc = timed_run([exe, "convert", str(CACHE / "models" / f"{name}.keras"), "-o", str(out)],
                                      worker_env(threads))
            if proc.returncode != 0:
                error = last_error_line(proc.stderr)
                shutil.rmtree(out, ignore_errors=True)
                break
            times.append(seconds)
            cpu.append(timed_run.cpu)
        results[name] = {"error": error} if error else {
            "seconds": statistics.median(times), "runs": times, "cpu_seconds": statistics.median(cpu)}
        log(f"tf2torch convert {name}: {results[name]}")
    return results


def convert_onnx_route(models: list[str], threads: int, repeats: int, timed_model: str | None = CONVERSION_MODEL) -> dict:
    """tf2onnx (SavedModel -> ONNX) then onnx2torch (ONNX -> torch.fx module), one process each.
    Timed for CONVERSION_MODEL; for the others the ONNX file is made once and cached."""
    (CACHE / "onnx").mkdir(parents=True, exist_ok=True)
    env = worker_env(threads)
    results = {}
    for name in models:
        onnx_path = CACHE / "onnx" / f"{name}.onnx"
        timed = name == timed_model
        if onnx_path.exists() and not timed:
            results[name] = {"cached": True}
            continue
        runs: list[dict] = []
        for _ in range(repeats if timed else 1):
            tmp = onnx_path.with_suffix(".tmp.onnx")
            tf2onnx_s, proc = timed_run([sys.executable, "-m", "tf2onnx.convert", "--saved-model",
                                         str(CACHE / "models" / f"{name}.savedmodel"), "--output", str(tmp),
                                         "--opset", str(ONNX_OPSET)], env)
            if proc.returncode != 0:
                runs = [{"error": "tf2onnx: " + last_error_line(proc.stderr)}]
                break
            os.replace(tmp, onnx_path)
            tf2onnx_cpu = timed_run.cpu
            onnx2torch_s, proc = timed_run([sys.executable, "-c", ONNX2TORCH_CONVERT, str(onnx_path), str(STUBS)], env)
            if proc.returncode != 0:
                runs = [{"error": "onnx2torch: " + last_error_line(proc.stderr)}]
                break
            runs.append({"tf2onnx": tf2onnx_s, "onnx2torch": onnx2torch_s, "seconds": tf2onnx_s + onnx2torch_s,
                         "cpu_seconds": tf2onnx_cpu + timed_run.cpu})
        if "error" in runs[0]:
            results[name] = runs[0]
        else:
            best = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]  # the median run
            results[name] = {**best, "runs": [r["seconds"] for r in runs]}
        log(f"tf2onnx + onnx2torch {name}: {results[name]}")
    return results


def run_worker(kind: str, config: dict, threads: int, **env: str) -> dict:
    log(f"worker {kind} ...")
    proc = subprocess.run([sys.executable, str(BENCH / "workers.py"), kind, json.dumps(config)],
                          env=worker_env(threads, **env), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log(f"worker {kind} failed: {last_error_line(proc.stderr)}")
        return {"__error__": last_error_line(proc.stderr)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_merge(results: list):
    """Worker outputs of several processes -> one, every number the median over them."""
    if not results:
        return {}
    first = results[0]
    if isinstance(first, dict):
        keys = [k for k in first if all(isinstance(r, dict) and k in r for r in results)]
        return {k: median_merge([r[k] for r in results]) for k in keys} | {
            k: v for k, v in first.items() if k not in keys}
    if isinstance(first, (int, float)) and not isinstance(first, bool) and all(
            isinstance(r, (int, float)) for r in results):
        return statistics.median(results)
    return first


# -- report -----------------------------------------------------------------------------------


def ms(value) -> str:
    if isinstance(value, (int, float)):
        return f"{value * 1000:.1f}"
    if isinstance(value, dict) and "error" in value:
        return "error"
    return "-"


def ratio(a, b) -> float | None:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0:
        return a / b
    return None


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def cpu_pair(ours: dict, theirs: dict) -> str:
    left = f"{ours['cpu_seconds']:.2f}" if "cpu_seconds" in ours else "-"
    right = f"{theirs['cpu_seconds']:.2f}" if "cpu_seconds" in theirs else "-"
    return f"{left} / {right}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def report(args, info: dict, conv: dict, onnx: dict, tf: dict, pt: dict, kt: dict) -> tuple[str, dict]:
    out: list[str] = ["# tf2torch benchmark results", ""]
    out += [f"- date: {info['date']}", f"- machine: {info['machine']}", f"- threads per framework: {args.threads}",
            f"- versions: {info['versions']}", f"- command: `{info['command']}`",
            (f"- timing: median of {args.runs} runs (batch 8; {2 * args.runs} at batch 1) after {args.warmup} warm-up "
             f"calls; training: median of {args.train_runs} steps; each figure then the median over "
             f"{args.repeats} worker processes per framework, run alternately"), ""]
    targets: dict = {}

    # Conversion
    out += ["## Conversion wall time (s, subprocess incl. Python start-up)", ""]
    rows = []
    for name in args.models:
        ours, theirs = conv.get(name, {}), onnx.get(name, {})
        speedup = ratio(theirs.get("seconds"), ours.get("seconds"))
        rows.append([name, f"{ours['seconds']:.2f}" if "seconds" in ours else ours.get("error", "-"),
                     f"{theirs['tf2onnx']:.2f}" if "tf2onnx" in theirs else theirs.get("error", "cached" if theirs else "-"),
                     f"{theirs['onnx2torch']:.2f}" if "onnx2torch" in theirs else "-",
                     f"{theirs['seconds']:.2f}" if "seconds" in theirs else "-",
                     "-" if speedup is None else f"{speedup:.1f}x",
                     cpu_pair(ours, theirs)])
    out += table(["model", "tf2torch convert", "tf2onnx", "onnx2torch", "tf2onnx + onnx2torch", "speed-up",
                  "CPU s (user+sys): tf2torch / ONNX route"], rows)
    r50, r50_onnx = conv.get(CONVERSION_MODEL, {}), onnx.get(CONVERSION_MODEL, {})
    speedup = ratio(r50_onnx.get("seconds"), r50.get("seconds"))
    targets["conversion speed-up >= 15x"] = (speedup, speedup is not None and speedup >= TARGET_CONVERSION_SPEEDUP)
    targets["conversion < 3 s"] = (r50.get("seconds"), r50.get("seconds") is not None and r50["seconds"] < TARGET_CONVERSION_SECONDS)
    out += ["", (f"Only {CONVERSION_MODEL} is timed on the ONNX route (others: ONNX file built once, cached). "
                 "The SavedModel export that tf2onnx needs first is not counted."), ""]

    # Forward
    variants = [("tf2torch", "tf2torch"), ("tf2torch_cl", "+ channels_last weights"), ("tf2torch_fused", "optimize_for_inference")]
    for batch in args.batches:
        out += [f"## Eval forward, batch {batch} (ms, fp32, CPU)", ""]
        rows, vs_tf, vs_kt, vs_o2t = [], [], [], []
        for name in args.models:
            tf_t, kt_t = tf.get(f"forward/{name}/{batch}"), kt.get(f"forward/{name}/{batch}")
            o2t = pt.get(f"forward/{name}/{batch}/onnx2torch")
            ours = {key: pt.get(f"forward/{name}/{batch}/{key}") for key, _ in variants}
            base = ours["tf2torch"]
            if base is None:
                error = conv.get(name, {}).get("error")
                rows.append([name, ms(tf_t), f"skipped: {error}" if error else "-", "-", "-", ms(o2t), ms(kt_t), "-", "-", "-"])
                continue
            r_tf, r_kt, r_o2t = ratio(base, tf_t), ratio(base, kt_t), ratio(base, o2t)
            vs_tf.append(r_tf)
            vs_kt.append(r_kt)
            vs_o2t.append(r_o2t)
            rows.append([name, ms(tf_t)] + [ms(ours[k]) for k, _ in variants] + [ms(o2t), ms(kt_t),
                        fmt_ratio(r_tf), fmt_ratio(r_kt), fmt_ratio(r_o2t)])
        med = [statistics.median([v for v in values if v is not None]) if any(v is not None for v in values) else None
               for values in (vs_tf, vs_kt, vs_o2t)]
        rows.append([f"**median ({len(vs_tf)} models)**", "", "", "", "", "", ""] + [f"**{fmt_ratio(m)}**" for m in med])
        out += table(["model", "TensorFlow", *(label for _, label in variants), "onnx2torch", "Keras 3 (torch)",
                      "tf2torch / TF", "tf2torch / Keras-torch", "tf2torch / onnx2torch"], rows)
        out += [""]
        if batch == 8:
            complete = len(vs_tf) == len(args.models)
            targets[f"forward b8 median <= 0.9x TF ({len(vs_tf)}/{len(args.models)} models)"] = (
                med[0], complete and med[0] is not None and med[0] <= TARGET_FORWARD_VS_TF)
            targets[f"forward b8 median <= 0.35x Keras-torch ({len(vs_tf)}/{len(args.models)} models)"] = (
                med[1], complete and med[1] is not None and med[1] <= TARGET_FORWARD_VS_KERAS_TORCH)
    out += [("Ratios use the default generated code (`tf2torch` column: model.py as written, NCHW-contiguous "
             "input, BatchNorm unfused; model.py itself puts the input in channels_last memory). `+ channels_last weights`: "
             "the same module after `.to(memory_format=torch.channels_last)`. `optimize_for_inference`: BatchNorm folded into the convolutions "
             "(inference only, opt-in)."), ""]

    # Training
    out += [f"## Training step, batch {args.train_batch} (ms: forward + backward + SGD step)", ""]
    rows = []
    for name in TRAIN_MODELS:
        if name not in args.models:
            continue
        key = f"train/{name}/{args.train_batch}"
        tf_t, ours = tf.get(key), pt.get(key) or {}
        if "error" in ours:
            rows.append([name, ms(tf_t), "error", "-", "-", "-"])
            continue
        r, r_cl = ratio(ours.get("tf2torch"), tf_t), ratio(ours.get("tf2torch_cl"), tf_t)
        rows.append([name, ms(tf_t), ms(ours.get("tf2torch")), ms(ours.get("tf2torch_cl")), fmt_ratio(r), fmt_ratio(r_cl)])
        targets[f"train {name} <= 1.0x TF"] = (r, r is not None and r <= TARGET_TRAIN_VS_TF)
    out += table(["model", "TensorFlow", "tf2torch", "+ channels_last weights", "tf2torch / TF", "channels_last weights / TF"], rows)

    out += ["", "## Targets (issue 6)", ""]
    rows = []
    for label, (value, ok) in targets.items():
        shown = "-" if value is None else (f"{value:.2f} s" if "< 3 s" in label else fmt_ratio(value) if "speed-up" not in label else f"{value:.1f}x")
        rows.append([label, shown, "met" if ok else "NOT met"])
    out += table(["target", "measured", "status"], rows)
    raw = {"info": info, "conversion": conv, "onnx_route": onnx, "tensorflow": tf, "torch": pt, "keras_torch": kt}
    return "\n".join(out) + "\n", raw


# -- --quick: eval forward against TensorFlow, on the user's machine ----------------------------

# (label, threads, one core kept busy by bench/busy.py)
QUICK_SETTINGS = [("1 thread", 1, False), ("2 threads", 2, False), ("2 threads, 1 core busy", 2, True)]
QUICK_VARIANTS = [("tf2torch", "default module"), ("tf2torch_fused", "optimize_for_inference")]
QUICK_WARMUP, QUICK_RUNS, QUICK_ROUNDS = 1, 3, 3


def run_quick(args, argv: list[str] | None) -> int:
    """Convert the models with this checkout, then per setting run TensorFlow and torch workers
    alternately (fresh processes, QUICK_ROUNDS each) and print medians and ratios."""
    started = time.perf_counter()
    header = [
        "# tf2torch quick benchmark: eval forward vs TensorFlow", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {cpu_description()}",
        f"- load average at start: {os.getloadavg()[0]:.1f}; OMP_WAIT_POLICY={args.omp_wait_policy or 'unset'}",
        f"- versions: {versions()}",
        f"- command: `{' '.join(['python bench/run.py', *(argv if argv is not None else sys.argv[1:])])}`",
        (f"- timing: 224x224 fp32, median of {QUICK_RUNS} calls ({2 * QUICK_RUNS} at batch 1) after {QUICK_WARMUP} "
         f"warm-up calls, then the median over {QUICK_ROUNDS} fresh processes per framework, run alternately"),
        "",
    ]
    log(header[3][2:])
    build_models(args.models, 2)
    converted = convert_tf2torch(args.models, 2, 1)
    models = [name for name in args.models if "error" not in converted.get(name, {"error": True})]
    out = list(header)
    summary = []
    for label, threads, busy in QUICK_SETTINGS:
        config = {"cache": str(CACHE), "models": models, "threads": threads, "batches": args.batches,
                  "warmup": QUICK_WARMUP, "runs": QUICK_RUNS, "train_models": [], "onnx2torch": False,
                  "variants": [key for key, _ in QUICK_VARIANTS]}
        load = subprocess.Popen([sys.executable, str(BENCH / "busy.py")]) if busy else None
        try:
            runs: dict[str, list[dict]] = {"tf": [], "torch": []}
            for _ in range(QUICK_ROUNDS):
                for kind, done in runs.items():
                    done.append(run_worker(kind, config, threads))
        finally:
            if load is not None:
                load.terminate()
                load.wait()
        tf, pt = median_merge(runs["tf"]), median_merge(runs["torch"])
        text, medians = quick_table(label, models, args.batches, tf, pt)
        out += text
        summary += [[label, f"batch {batch}"] + [fmt_ratio(m) for m in medians[batch]] for batch in args.batches]
        print("\n".join(text), flush=True)
    out += [f"## Summary: median over {len(models)} models of time / TensorFlow's time", ""]
    out += table(["setting", "batch", *(name for _, name in QUICK_VARIANTS)], summary)
    out += ["", f"Total wall time {time.perf_counter() - started:.0f} s."]
    text = "\n".join(out) + "\n"
    RESULTS.mkdir(exist_ok=True)
    name = args.results_name if args.results_name != "results" else "quick"
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    log(f"written {RESULTS / name}.md")
    return 0


def quick_table(label: str, models: list[str], batches: list[int], tf: dict, pt: dict) -> tuple[list[str], dict]:
    rows, medians = [], {}
    for batch in batches:
        ratios: list[list[float]] = [[] for _ in QUICK_VARIANTS]
        for name in models:
            tf_t = tf.get(f"forward/{name}/{batch}")
            ours = [pt.get(f"forward/{name}/{batch}/{key}") for key, _ in QUICK_VARIANTS]
            row_ratios = [ratio(t, tf_t) for t in ours]
            for collected, r in zip(ratios, row_ratios):
                if r is not None:
                    collected.append(r)
            rows.append([name, str(batch), ms(tf_t), *map(ms, ours), *map(fmt_ratio, row_ratios)])
        medians[batch] = [statistics.median(r) if r else None for r in ratios]
        rows.append([f"**median ({len(models)} models)**", str(batch), "", "", ""] + [f"**{fmt_ratio(m)}**" for m in medians[batch]])
    names = [name for _, name in QUICK_VARIANTS]
    text = [f"## {label} (ms)", ""] + table(
        ["model", "batch", "TensorFlow", *names, *(f"{n} / TF" for n in names)], rows) + [""]
    return text, medians


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for package in ("torch", "tensorflow", "keras", "tf2onnx", "onnx", "onnx2torch"):
        try:
            parts.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package} missing")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for every framework (default 2)")
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10, help="timed forward calls at batch 8 (x2 at batch 1)")
    parser.add_argument("--train-runs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3,
                        help="worker processes per framework, alternating; timings are medians over them (default 3)")
    parser.add_argument("--conversion-repeats", type=int, default=3, help="timed conversions of ResNet50, each route")
    parser.add_argument("--skip", nargs="*", default=[], choices=["conversion", "tf", "torch", "keras_torch", "onnx"],
                        help="leave out parts (their columns show '-')")
    parser.add_argument("--omp-wait-policy", choices=["passive", "active"], default=None,
                        help="OMP_WAIT_POLICY for every worker. Leave unset on a quiet machine; 'passive' on a shared, "
                             "overloaded one, where OpenMP threads that spin-wait (torch's default) lose their CPU "
                             "to other processes and torch's timings become meaningless (TensorFlow does not use OpenMP)")
    parser.add_argument("--malloc-heap", action="store_true",
                        help="every worker runs with glibc's mmap threshold raised (MALLOC_MMAP_THRESHOLD_, "
                             "MALLOC_TRIM_THRESHOLD_), so big activations are reused instead of page-faulted in anew")
    parser.add_argument("--results-name", default="results", help="results file stem (default results)")
    parser.add_argument("--quick", action="store_true",
                        help="eval forward only: the default module, optimize_for_inference and TensorFlow at 1 thread, "
                             "2 threads and 2 threads with one core busy (bench/busy.py); < 10 min (see bench/README.md)")
    args = parser.parse_args(argv)
    global OMP_WAIT_POLICY, MALLOC_HEAP
    OMP_WAIT_POLICY = args.omp_wait_policy.upper() if args.omp_wait_policy else None
    MALLOC_HEAP = args.malloc_heap
    if args.quick:
        return run_quick(args, argv)

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu_description()}, {platform.platform()}, "
                   f"load average at start {os.getloadavg()[0]:.1f}, OMP_WAIT_POLICY={args.omp_wait_policy or 'unset'}, "
                   f"glibc big-block heap reuse (--malloc-heap): {'on' if args.malloc_heap else 'off'}",
        "versions": versions(),
        "command": " ".join(["python bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    build_models(args.models, args.threads)
    conv = {} if "conversion" in args.skip else convert_tf2torch(args.models, args.threads, args.conversion_repeats)
    if "conversion" in args.skip:  # still need model.py for the forward timings
        conv = {name: {"cached": True} for name in args.models if (CACHE / "tf2torch" / name / "model.py").exists()}
    onnx = {} if "onnx" in args.skip else convert_onnx_route(
        args.models, args.threads, args.conversion_repeats, None if "conversion" in args.skip else CONVERSION_MODEL)
    config = {"cache": str(CACHE), "models": args.models, "threads": args.threads, "batches": args.batches,
              "warmup": args.warmup, "runs": args.runs, "train_runs": args.train_runs,
              "train_models": [m for m in TRAIN_MODELS if m in args.models], "train_batch": args.train_batch,
              "onnx2torch": "onnx" not in args.skip}
    # Worker processes alternate (tf, torch, Keras-torch, tf, ...) --repeats times: a process's
    # speed can differ by up to 2x from the next one's on a VM (thread placement), for every
    # framework, so each timing is the median over that framework's processes.
    runs: dict[str, list[dict]] = {"tf": [], "torch": [], "keras_torch": []}
    for _ in range(args.repeats):
        for kind, done in runs.items():
            if kind not in args.skip:
                extra = {"KERAS_BACKEND": "torch"} if kind == "keras_torch" else {}
                done.append(run_worker(kind, config, args.threads, **extra))
    tf, pt, kt = (median_merge(runs[kind]) for kind in ("tf", "torch", "keras_torch"))
    text, raw = report(args, info, conv, onnx, tf, pt, kt)
    if "onnx" not in args.skip and "ResNet50" in args.models:  # the ONNX-input row (bench/bench_onnx.py)
        import bench_onnx

        raw["onnx_input"] = bench_onnx.measure(args.threads, args.repeats, tuple(args.batches), args.warmup, args.runs,
                                               worker_env)
        text += "\n" + "\n".join(bench_onnx.table(raw["onnx_input"], tuple(args.batches)))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.results_name}.md").write_text(text)
    (RESULTS / f"{args.results_name}.json").write_text(json.dumps(raw, indent=2) + "\n")
    print(text)
    log(f"written {RESULTS / args.results_name}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
