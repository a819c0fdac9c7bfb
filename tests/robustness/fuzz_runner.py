"""Run `tf2torch convert` on fuzz cases, each in its own process with a time and a memory
limit, and classify what happened.

Most cases run in a process forked from a server that has tf2torch imported already
(fuzz_worker.py; a fresh interpreter per case would cost ~1 s of imports); `subprocess_run`
runs the real command line (`python -m tf2torch.cli`), used for one case per family and for
the cases that need TensorFlow.

    python fuzz_runner.py [SEEDS]           prints the family x outcome table
    python fuzz_runner.py --sweep [FAMILY]  the same for the `-m slow` sweep's seeds (and seed 0)
"""

from __future__ import annotations

import json
import os
import queue
import resource
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fuzz_cases import CONVERT_WARN, REJECT, Case, Fixtures, make_case

REPO = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 3 * 1024**3  # address space; a conversion of the fixtures needs < 1 GB
TIME_LIMIT = 60.0  # generous: the machine may be busy; a case that opens a FIFO never returns
TF_TIME_LIMIT = 180.0  # a fresh interpreter importing TensorFlow
TF_NOISE = ("I0000", "WARNING: All log messages before absl", "oneDNN", "cuda", "W0000", "E0000")

OK = "ok"
SLOW_SEEDS = 80  # per family in the `-m slow` sweep
SLOW_TF_SEEDS = 12  # the families that need TensorFlow: a fresh interpreter per case


@dataclass
class Run:
    exit_code: int | None  # None: killed after the time limit
    stdout: str
    stderr: str


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


class ForkServer:
    """One fuzz_worker.py process; `run` is one case (not thread-safe: one per thread)."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
                   TF_CPP_MIN_LOG_LEVEL="3")
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("fuzz_worker.py"))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )

    def run(self, argv: list[str], temp_dir: Path, log_dir: Path, time_limit: float = TIME_LIMIT) -> Run:
        out_path, err_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
        request = {"argv": argv, "tmpdir": str(temp_dir), "stdout": str(out_path), "stderr": str(err_path),
                   "memory": MEMORY_LIMIT, "time_limit": time_limit}
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        answer = json.loads(self._process.stdout.readline())
        return Run(answer["code"], _read(out_path), _read(err_path))

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(30)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def subprocess_run(argv: list[str], temp_dir: Path, time_limit: float = TF_TIME_LIMIT) -> Run:
    env = dict(os.environ, TMPDIR=str(temp_dir), PYTHONPATH=str(REPO / "src"), TF_CPP_MIN_LOG_LEVEL="3")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tf2torch.cli", *argv], check=False, capture_output=True, text=True, env=env,
            timeout=time_limit, preexec_fn=_limit_memory, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        return Run(None, str(exc.stdout or ""), str(exc.stderr or ""))
    return Run(done.returncode, done.stdout, done.stderr)


def _real_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not any(n in line for n in TF_NOISE)]


def _snapshot(directory: Path) -> dict[str, bytes] | None:
    if not directory.exists():
        return None
    return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else b"") for p in directory.rglob("*")}


def classify(case: Case, run: Run, temp_dir: Path, out_dir: Path, before: dict | None) -> str:
    """One outcome for the table; OK when everything the case expects held."""
    if run.exit_code is None:
        return "hang (time limit)"
    if run.exit_code < 0:
        return f"killed by signal {-run.exit_code}"
    lines = _real_lines(run.stderr)
    if "Traceback" in run.stderr:
        return "traceback"
    leftovers = sorted(p.name for p in temp_dir.iterdir()) if temp_dir.exists() else []
    if run.exit_code == 0:
        if case.expect == REJECT:
            return "accepted bad input"
        if not (out_dir / "model.py").is_file() or not (out_dir / "model.safetensors").is_file():
            return "exit 0 without outputs"
        if leftovers:
            return "temp files left"
        if case.expect == CONVERT_WARN and not any("warning" in line for line in lines):
            return "converted without a warning"
        return OK
    if run.exit_code != 2:
        return f"exit {run.exit_code}"
    if leftovers:
        return "temp files left"
    if _snapshot(out_dir) != before:
        return "output dir changed"
    if case.expect == CONVERT_WARN:
        return "refused a valid file"
    if len(lines) != 1 and not _unsupported_layers_report(lines):
        return "message not one line"
    if "this is a tf2torch bug" in lines[0]:
        return "unexpected error"  # the CLI's last resort: an exception that is not a ConversionError
    if not lines[0].startswith(f"tf2torch convert: error: {case.source}"):
        return "message does not name the file first"
    return OK


def _unsupported_layers_report(lines: list[str]) -> bool:
    """The one multi-line message: the list of layers that cannot be converted (a class name
    tf2torch does not know, e.g. a damaged one), one per line, then how to add converters."""
    return (lines[0].endswith("cannot be converted:") and lines[1].startswith("  - ")
            and all(line.startswith("  - ") for line in lines[1:-1]) and "register_layer" in lines[-1])


def prepare_output(out_dir: Path, existing: bool) -> dict | None:
    if existing:
        out_dir.mkdir(parents=True)
        (out_dir / "model.py").write_text("# an earlier conversion\n")
        (out_dir / "notes.txt").write_text("the user's own file\n")
    return _snapshot(out_dir)


def run_case(family: str, seed: int, fixtures: Fixtures, root: Path, server: ForkServer | None) -> tuple[Case, str, Run]:
    """Make case `seed` of `family` under `root` and run it; returns the outcome."""
    case_dir = root / f"{family}-{seed}" / "input"
    case = make_case(family, seed, fixtures, case_dir)
    temp_dir = case_dir.parent / "tmp"
    temp_dir.mkdir()
    out_dir = case_dir.parent / "out"
    before = prepare_output(out_dir, existing=seed % 2 == 1)
    argv = ["convert", case.source, "-o", str(out_dir), *case.extra_args]
    run = subprocess_run(argv, temp_dir) if server is None else server.run(argv, temp_dir, case_dir.parent)
    return case, classify(case, run, temp_dir, out_dir, before), run


def run_family(family: str, seeds: range, fixtures: Fixtures, root: Path, servers: list[ForkServer] | None,
               ) -> list[tuple[Case, str, Run]]:
    return run_cases([(family, seed) for seed in seeds], fixtures, root, servers)


def run_cases(cases: list[tuple[str, int]], fixtures: Fixtures, root: Path, servers: list[ForkServer] | None,
              ) -> list[tuple[Case, str, Run]]:
    """(family, seed) cases: through the fork servers (one thread each), or, with
    servers=None, each through the real command line (two at a time)."""
    if servers is None:
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(lambda c: run_case(*c, fixtures, root, None), cases))
    idle: queue.Queue[ForkServer] = queue.Queue()
    for server in servers:
        idle.put(server)

    def one(family_seed: tuple[str, int]) -> tuple[Case, str, Run]:
        server = idle.get()
        try:
            return run_case(*family_seed, fixtures, root, server)
        finally:
            idle.put(server)

    with ThreadPoolExecutor(len(servers)) as pool:
        return list(pool.map(one, cases))


def table(results: dict[str, list[str]]) -> str:
    """The family x outcome table (markdown)."""
    outcomes = sorted({o for values in results.values() for o in values}, key=lambda o: (not o.startswith(OK), o))
    lines = ["| family | cases | " + " | ".join(outcomes) + " |", "|---|---:|" + "---:|" * len(outcomes)]
    for family, values in results.items():
        counts = Counter(values)
        lines.append(f"| {family} | {len(values)} | " + " | ".join(str(counts.get(o, "")) for o in outcomes) + " |")
    totals = Counter(o for values in results.values() for o in values)
    lines.append(f"| **total** | {sum(totals.values())} | " + " | ".join(str(totals[o]) for o in outcomes) + " |")
    return "\n".join(lines)


def build_fixtures(directory: Path) -> Fixtures:
    directory.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, str(Path(__file__).with_name("make_fixtures.py")), str(directory)],
                   check=True, env=env, capture_output=True)
    return Fixtures(directory / "small.keras", directory / "small.h5", directory / "saved_model", directory / "frozen.pb")


def sweep_seeds(family: str, start: int = 1) -> range:
    """The seeds of `family` in the `-m slow` sweep (seed 0 runs in the default run)."""
    from fuzz_cases import SMALL_FAMILIES, TF_FAMILIES

    if family in TF_FAMILIES:
        return range(start, SLOW_TF_SEEDS)
    return range(start, min(SLOW_SEEDS, SMALL_FAMILIES.get(family, SLOW_SEEDS) * 3))


if __name__ == "__main__":
    from fuzz_cases import FAMILIES, SMALL_FAMILIES, TF_FAMILIES

    sweep = len(sys.argv) > 1 and sys.argv[1] == "--sweep"
    seeds = 8 if sweep or len(sys.argv) < 2 else int(sys.argv[1])
    families = sys.argv[2:] if sweep and len(sys.argv) > 2 else list(FAMILIES)
    work = Path(tempfile.mkdtemp(prefix="fuzz-"))
    fixtures = build_fixtures(work / "fixtures")
    results: dict[str, list[str]] = {}
    servers = [ForkServer(), ForkServer()]
    for family in families:
        n = min(seeds, SMALL_FAMILIES.get(family, seeds), 4 if family in TF_FAMILIES else seeds)
        family_seeds = sweep_seeds(family, start=0) if sweep else range(n)
        runs = run_family(family, family_seeds, fixtures, work / "cases", None if family in TF_FAMILIES else servers)
        # Clean outcomes split by what happened: refused with exit 2, or converted (a valid file).
        results[family] = [f"ok, exit {run.exit_code}" if outcome == OK else outcome for _, outcome, run in runs]
        for case, outcome, run in runs:
            if outcome != OK:
                last = (_real_lines(run.stderr) or ["<no stderr>"])[-1][:200]
                print(f"  {family}: {outcome}: {case.source}: {last}", file=sys.stderr)
        print(family, Counter(results[family]), file=sys.stderr, flush=True)
    for server in servers:
        server.close()
    print(table(results))
