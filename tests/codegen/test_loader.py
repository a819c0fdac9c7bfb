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


def test_a_file_name_cannot_inject_code_into_model_py_or_train_py(tmp_path):
    import ast
    import shutil

    hostile = tmp_path / 'x"""\nimport os\nos.system("touch pwned")\n""".keras'
    shutil.copyfile(EXAMPLE, hostile)  # the example is compiled: train.py is written too
    out = tf2torch.convert(hostile).save(tmp_path / "out")
    for name in ("model.py", "train.py"):
        tree = ast.parse((out / name).read_text())
        assert "touch pwned" in ast.get_docstring(tree), name  # the name stays text in the docstring
        mentions = [node for node in ast.walk(tree) if isinstance(node, ast.Constant) and "pwned" in str(node.value)]
        assert len(mentions) == 1, name  # ... and only there: no os.system("touch pwned") call
