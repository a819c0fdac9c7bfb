"""ConversionResult.save writes model.py / model.safetensors atomically: all files or none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tf2torch
from tf2torch import output

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "small_cnn.keras"


@pytest.fixture(scope="module")
def result():
    return tf2torch.convert(EXAMPLE)


# The bundled example was compiled and trained: save() adds train.py and the optimizer state.
EXPECTED_FILES = ["model.py", "model.safetensors", "optimizer.safetensors", "train.py", "weights_map.json"]


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
