"""The command line on malformed and hostile model files (fuzz_cases.py): every case exits 2
with one line naming the file (or, where the damage cannot be seen, converts completely),
never a traceback or a hang, leaves no temporary file, leaves the output directory as it
was, and never opens the FIFO canary next to the input (HDF5 links, external storage and
virtual datasets point at it: opening it would block until the time limit).

Default run: seed 0 of every family through the real `python -m tf2torch.cli`, the other
seeds through a fork server (fuzz_worker.py). `-m slow`: many more seeds per family.
`python fuzz_runner.py [SEEDS]` prints the family x outcome table.
"""

from __future__ import annotations

import pytest
from fuzz_cases import FAMILIES, QUICK_FAMILIES, SLOW_FAMILIES, SMALL_FAMILIES, TF_FAMILIES
from fuzz_runner import OK, ForkServer, build_fixtures, run_cases, run_family, sweep_seeds

DEFAULT_FAMILIES = [f for f in FAMILIES if f not in SLOW_FAMILIES]
KERAS_FAMILIES = [f for f in DEFAULT_FAMILIES if f not in TF_FAMILIES]
DEFAULT_SEEDS = 7


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return build_fixtures(tmp_path_factory.mktemp("fuzz-fixtures"))


@pytest.fixture(scope="module")
def servers():
    pair = [ForkServer(), ForkServer()]
    yield pair
    for server in pair:
        server.close()


def _failures(runs) -> list[str]:
    failed = []
    for case, outcome, run in runs:
        if outcome != OK:
            last = (run.stderr.strip().splitlines() or ["<no stderr>"])[-1][:300]
            failed.append(f"{case.family} [{case.expect}] {case.source}: {outcome}: {last}")
    return failed


def test_every_family_through_the_command_line(fixtures, tmp_path):
    # The TensorFlow ones first: they take longest (a fresh interpreter importing TensorFlow).
    order = sorted(DEFAULT_FAMILIES, key=lambda family: family not in TF_FAMILIES)
    runs = run_cases([(family, 0) for family in order], fixtures, tmp_path, None)
    assert len(runs) == len(DEFAULT_FAMILIES)
    assert not _failures(runs)


@pytest.mark.parametrize("family", KERAS_FAMILIES)
def test_family(family, fixtures, servers, tmp_path):
    seeds = range(1, min(3 if family in QUICK_FAMILIES else DEFAULT_SEEDS, SMALL_FAMILIES.get(family, DEFAULT_SEEDS) + 1))
    runs = run_family(family, seeds, fixtures, tmp_path, servers)
    assert not _failures(runs)


# Cases the `-m slow` sweep found, each a failure before its fix: Conv2D configs without
# `filters` / `kernel_size` converted (both read off the kernel's shape); a damaged class
# name (.h5 and .keras) was reported by the unsupported-layers list, the one message of
# several lines, which the runner now recognises.
SWEEP_FINDINGS = [("config_missing_key", 14), ("config_missing_key", 38), ("config_structure_wrong", 41),
                  ("config_structure_wrong", 52)]


def test_sweep_findings(fixtures, servers, tmp_path):
    runs = run_cases(SWEEP_FINDINGS, fixtures, tmp_path, servers)
    assert not _failures(runs)
    assert [run.exit_code for _, _, run in runs] == [2, 2, 2, 2]


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_sweep(family, fixtures, servers, tmp_path):
    runs = run_family(family, sweep_seeds(family), fixtures, tmp_path, None if family in TF_FAMILIES else servers)
    assert not _failures(runs)
