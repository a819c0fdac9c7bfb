"""ConversionResult.save writes model.py / model.safetensors atomically: all files or none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tf2torch
from tf2torch import output

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "small_cnn.keras"


@pytest.fixture(scope="module")
def result():
    return tf2torch.convert(EXAMPLE)


# The bundled example was compiled and trained: save() adds train.py (with its train_utils.py)
# and the optimizer state.
EXPECTED_FILES = ["model.py", "model.safetensors", "optimizer.safetensors", "train.py", "train_utils.py",
                  "weights_map.json"]


def test_save_writes_all_files_and_no_staging_left(result, tmp_path):
    out = result.save(tmp_path / "a" / "b")
    assert sorted(p.name for p in out.iterdir()) == EXPECTED_FILES
    assert (out / "model.py").read_text() == result.source_code


def test_save_replaces_existing_files(result, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.py").write_text("stale\n")
    (out / "model.safetensors").write_bytes(b"stale")
    result.save(out)
    assert (out / "model.py").read_text() == result.source_code
    assert (out / "model.safetensors").read_bytes() != b"stale"
    assert sorted(p.name for p in out.iterdir()) == EXPECTED_FILES


def test_save_with_report_writes_verification_json(result, tmp_path):
    report = result.verify(batch_size=2)
    out = result.save(tmp_path / "out", report=report)
    data = json.loads((out / "verification.json").read_text())
    assert data["ok"] is True and data["outputs"][0]["name"] == "logits"


def _failing_fsync(monkeypatch, fail_on: int) -> None:
    calls = {"n": 0}
    real = output.os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] == fail_on:
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr(output.os, "fsync", fsync)


def test_failed_write_leaves_existing_directory_untouched(result, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.py").write_text("old\n")
    _failing_fsync(monkeypatch, fail_on=2)
    with pytest.raises(OSError):
        result.save(out)
    assert [p.name for p in out.iterdir()] == ["model.py"]
    assert (out / "model.py").read_text() == "old\n"


def test_failed_write_does_not_create_the_directory(result, tmp_path, monkeypatch):
    _failing_fsync(monkeypatch, fail_on=1)
    with pytest.raises(OSError):
        result.save(tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_files_of_an_earlier_conversion_not_written_again_are_removed(result, tmp_path):
    out = tmp_path / "out"
    result.save(out)  # compiled: train.py, train_utils.py, optimizer.safetensors
    assert (out / "train_utils.py").exists()
    (out / "verification.json").write_text("{}")
    (out / "notes.txt").write_text("the user's own file\n")
    uncompiled = tf2torch.convert(EXAMPLE)
    uncompiled.compile_config = None
    uncompiled.save(out)
    assert sorted(p.name for p in out.iterdir()) == ["model.py", "model.safetensors", "notes.txt", "weights_map.json"]


def test_failed_replace_restores_the_previous_conversion(result, tmp_path, monkeypatch):
    out = tmp_path / "out"
    result.save(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = output.os.replace
    calls = {"n": 0}

    def replace(src, dst):
        if str(src).startswith(str(out / ".tf2torch-staging-")) and "previous" not in str(src):
            calls["n"] += 1
            if calls["n"] == 2:  # the second new file fails after the first was moved in
                raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(output.os, "replace", replace)
    with pytest.raises(OSError, match="not writable"):
        tf2torch.convert(EXAMPLE).save(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_two_conversions_give_identical_bytes(result, tmp_path):
    first = result.save(tmp_path / "a")
    second = tf2torch.convert(EXAMPLE).save(tmp_path / "b")
    for name in EXPECTED_FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_written_safetensors_load_with_the_library(result, tmp_path):
    from safetensors import safe_open

    out = result.save(tmp_path / "out")
    with safe_open(str(out / "model.safetensors"), "np") as handle:
        assert handle.metadata() == {"by": "tf2torch", "converted_from": "small_cnn.keras"}
        for name, array in result.state_dict.items():
            np.testing.assert_array_equal(handle.get_tensor(name), array)


def test_conversions_into_one_directory_take_turns(result, tmp_path):
    import fcntl
    import os
    import threading

    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another conversion is writing
    writer = threading.Thread(target=result.save, args=(out,))
    writer.start()
    writer.join(0.5)
    assert writer.is_alive() and list(out.iterdir()) == []
    os.close(fd)
    writer.join(30)
    assert sorted(p.name for p in out.iterdir()) == EXPECTED_FILES


def test_output_path_that_is_a_file(result, tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(OSError, match="exists and is not a directory"):
        result.save(target)
    assert target.read_text() == "x"
