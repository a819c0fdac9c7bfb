"""The generated module is imported from memory: no temporary files, and its source is still
visible to tracebacks, inspect and torch.compile (torch.export of `result.module` is tested
in test_generated_code.py)."""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path

import pytest

import tf2torch
from tf2torch.codegen.loader import import_source

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "small_cnn.keras"


def test_import_writes_no_file_and_keeps_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    result = tf2torch.convert(EXAMPLE)
    module = result.module
    assert list(tmp_path.iterdir()) == []
    assert inspect.getsource(type(module)) in result.source_code
    assert not Path(inspect.getsourcefile(type(module))).exists()


def test_a_runtime_error_points_into_the_generated_source():
    module = import_source("def fail(x):\n    return x / 0\n")
    try:
        module.fail(1)
    except ZeroDivisionError as exc:
        frame = exc.__traceback__.tb_next
        assert inspect.getframeinfo(frame).code_context == ["    return x / 0\n"]


@pytest.mark.slow  # torch.compile takes ~30 s on a busy 2-core machine
def test_torch_compile_runs_the_imported_module():
    import torch

    module = tf2torch.convert(EXAMPLE).module
    x = torch.randn(2, 3, 33, 35)
    torch.testing.assert_close(torch.compile(module)(x), module(x))
