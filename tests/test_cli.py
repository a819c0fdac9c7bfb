"""The `tf2torch` command line: exit codes, messages, outputs, and running without TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import perturb_weights
from tf2torch import cli

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "small_cnn.keras"
TF_NOISE = ("I0000", "WARNING: All log messages before absl", "oneDNN", "cuda")


def _real_stderr(text: str) -> str:
    """stderr without TensorFlow's C++ start-up chatter."""
    return "\n".join(line for line in text.splitlines() if line.strip() and not any(n in line for n in TF_NOISE))


# -- model files, built once per module --------------------------------------------------------


@pytest.fixture(autouse=True)
def _reports_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `tf2torch verify` writes ./verification.html


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import keras

    @keras.saving.register_keras_serializable(package="tf2torch_tests")
    class ScaleByTwo(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    @keras.saving.register_keras_serializable(package="tf2torch_tests")
    class ShiftByOne(keras.layers.Layer):
        def call(self, x):
            return x + 1.0

    root = tmp_path_factory.mktemp("cli_models")
    paths = {}

    # A small nested functional model: an inner Sequential block inside the outer graph.
    block = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="inner_dense"), keras.layers.ReLU(name="inner_relu")], name="block")
    inputs = keras.Input((4,), name="features")
    x = keras.layers.Dense(6, activation="tanh", name="embed")(inputs)
    x = block(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    nested = keras.Model(inputs, outputs, name="nested")
    perturb_weights(nested)
    paths["nested"] = root / "nested.keras"
    nested.save(paths["nested"])

    # Three unsupported layers: two custom classes without a converter and one LSTM (if the
    # registry has no importer for it yet; otherwise a third custom layer).
    from tf2torch.frontends.keras.importer import is_supported

    seq_in = keras.Input((7, 4), name="seq")
    if not is_supported("LSTM"):
        y = keras.layers.LSTM(5, return_sequences=True, name="lstm_layer")(seq_in)
    else:
        y = ShiftByOne(name="lstm_layer")(keras.layers.Dense(5)(seq_in))
    y = ScaleByTwo(name="scale_custom")(y)
    y = keras.layers.Dense(5, name="after_scale")(y)
    y = ShiftByOne(name="shift_custom")(y)
    unsupported = keras.Model(seq_in, y, name="unsupported")
    paths["unsupported"] = root / "unsupported.keras"
    unsupported.save(paths["unsupported"])

    paths["not_a_model"] = root / "notes.keras"
    paths["not_a_model"].write_text("this is not a model\n")
    paths["npz"] = root / "inputs.npz"
    np.savez(paths["npz"], image=np.random.default_rng(1).standard_normal((3, 33, 35, 3)).astype(np.float32))
    return paths


# -- convert -------------------------------------------------------------------------------------


def test_convert_writes_model_and_weights(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["convert", str(EXAMPLE), "-o", str(out)]) == 0
    # The example was compiled and trained: train.py (+ train_utils.py) and the optimizer state come with it.
    assert sorted(p.name for p in out.iterdir()) == ["model.py", "model.safetensors", "optimizer.safetensors", "train.py",
                                                     "train_utils.py", "weights_map.json"]
    assert "class SmallCnn(nn.Module)" in (out / "model.py").read_text()
    assert "model.py" in capsys.readouterr().out


def test_convert_with_verify_prints_table_and_writes_report(tmp_path, capsys, models):
    out = tmp_path / "out"
    code = cli.main(["convert", str(EXAMPLE), "-o", str(out), "--verify", "--inputs", str(models["npz"]), "--name", "Net"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Result: OK" in printed and "batch 3" in printed
    report = json.loads((out / "verification.json").read_text())
    assert report["ok"] is True and report["batch_size"] == 3
    assert "class Net(nn.Module)" in (out / "model.py").read_text()


def test_convert_replaces_existing_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.py").write_text("old\n")
    (out / "keep.txt").write_text("mine\n")
    assert cli.main(["convert", str(EXAMPLE), "-o", str(out)]) == 0
    assert (out / "model.py").read_text().startswith('"""SmallCnn')
    assert (out / "keep.txt").read_text() == "mine\n"
    assert sorted(p.name for p in out.iterdir()) == [
        "keep.txt", "model.py", "model.safetensors", "optimizer.safetensors", "train.py", "train_utils.py",
        "weights_map.json"]


def test_convert_failed_verification_still_writes_and_exits_1(tmp_path, monkeypatch, capsys):
    from tf2torch.verify import compare

    monkeypatch.setattr(compare, "DEFAULT_TOLERANCE", 0.0)
    monkeypatch.setattr(compare.OutputCheck, "status", property(lambda self: "FAILED"))
    out = tmp_path / "out"
    assert cli.main(["convert", str(EXAMPLE), "-o", str(out), "--verify"]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert {"model.py", "model.safetensors", "verification.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "verification.json").read_text())["ok"] is False


def test_convert_missing_file_exits_2_without_output(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["convert", str(tmp_path / "nope.keras"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err
    assert not out.exists()


def test_convert_non_model_file_exits_2_without_output(tmp_path, capsys, models):
    out = tmp_path / "out"
    assert cli.main(["convert", str(models["not_a_model"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "neither a .keras archive" in err and "Traceback" not in err
    assert not out.exists()


def test_convert_unsupported_layers_lists_every_one(tmp_path, capsys, models):
    out = tmp_path / "out"
    assert cli.main(["convert", str(models["unsupported"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    for name in ("lstm_layer", "scale_custom", "shift_custom"):
        assert name in err
    assert "ScaleByTwo" in err and "register_layer" in err and "Traceback" not in err
    assert not out.exists()


def test_convert_unsupported_leaves_existing_outdir_untouched(tmp_path, models):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.py").write_text("old\n")
    assert cli.main(["convert", str(models["unsupported"]), "-o", str(out)]) == 2
    assert [p.name for p in out.iterdir()] == ["model.py"]
    assert (out / "model.py").read_text() == "old\n"


def test_convert_missing_inputs_file_exits_2(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["convert", str(EXAMPLE), "-o", str(out), "--verify", "--inputs", str(tmp_path / "x.npz")]) == 2
    assert "no such inputs file" in capsys.readouterr().err
    assert not out.exists()


def test_convert_interrupted_exits_130_with_one_line_and_no_output(tmp_path, capsys, monkeypatch):
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("tf2torch.api._convert_source", interrupted)
    out = tmp_path / "out"
    assert cli.main(["convert", str(EXAMPLE), "-o", str(out)]) == 130
    assert capsys.readouterr().err == "tf2torch convert: interrupted; nothing was written\n"
    assert not out.exists()


def test_unexpected_error_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("tf2torch.api.run_passes", broken)
    assert cli.main(["convert", str(EXAMPLE), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"tf2torch convert: error: {EXAMPLE}: ")


def test_warnings_are_one_line_each(tmp_path, capsys, monkeypatch):
    import warnings

    def noisy(*args, **kwargs):
        warnings.warn_explicit("first line\nsecond line", UserWarning, "api.py", 1, module="tf2torch.api")
        return real(*args, **kwargs)

    real = tf2torch_convert()
    monkeypatch.setattr("tf2torch.convert", noisy)
    assert cli.main(["convert", str(EXAMPLE), "-o", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().err == "tf2torch convert: warning: first line second line\n"


def tf2torch_convert():
    import tf2torch

    return tf2torch.convert


def test_max_weight_bytes_option_is_honoured(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["convert", str(EXAMPLE), "-o", str(out), "--max-weight-bytes", "1000"]) == 2
    err = capsys.readouterr().err
    assert "--max-weight-bytes" in err and err.count("\n") == 1
    assert not out.exists()


# -- inspect -------------------------------------------------------------------------------------


def test_inspect_lists_layers_shapes_and_params(capsys):
    assert cli.main(["inspect", str(EXAMPLE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    conv1 = next(line for line in lines if line.startswith("conv1 "))
    assert conv1.split() == ["conv1", "Conv2D", "(None,", "17,", "18,", "16)", "432", "yes"]
    assert any(line.split()[:2] == ["hidden", "Dense"] and "12,320" in line for line in lines)
    assert lines[-1] == "12 layers, 0 unsupported, 16,722 parameters"


def test_inspect_nested_model_prefixes_inner_layers(capsys, models):
    assert cli.main(["inspect", str(models["nested"])]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(("Layers", "-"))}
    assert "(None, 5)" in rows["block/inner_dense"] and "35" in rows["block/inner_dense"]
    assert rows["block"].split()[1] == "Sequential" and "(None, 5)" in rows["block"]
    assert "(None, 3)" in rows["head"]


def test_inspect_unsupported_layers_is_a_report_not_an_error(capsys, models):
    assert cli.main(["inspect", str(models["unsupported"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines if line and not line.startswith(("Layers", "-", "Unsupported"))}
    assert " NO" in rows["scale_custom"] and " NO" in rows["shift_custom"] and " NO" in rows["lstm_layer"]
    assert "?" in rows["after_scale"] and " yes" in rows["after_scale"]  # shape unknown past a gap
    assert "(None, 7, 4)" in rows["seq"]
    assert any(line.startswith("5 layers, 3 unsupported") for line in lines) or any(
        line.startswith("6 layers, 3 unsupported") for line in lines
    )


def test_inspect_function_returns_rows(models):
    from tf2torch.inspect_model import inspect_model

    rows = {row.name: row for row in inspect_model(str(models["nested"]))}
    assert rows["embed"].output_shapes == [(None, 6)] and rows["embed"].params == 4 * 6 + 6
    assert rows["block/inner_relu"].supported and rows["block/inner_relu"].output_shape_text == "(None, 5)"


@pytest.mark.parametrize("kind", ["missing", "not_a_model"])
def test_inspect_unreadable_file_exits_2(tmp_path, capsys, models, kind):
    path = tmp_path / "nope.h5" if kind == "missing" else models["not_a_model"]
    assert cli.main(["inspect", str(path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


# -- verify --------------------------------------------------------------------------------------


def test_verify_ok_exits_0(capsys, models):
    assert cli.main(["verify", str(EXAMPLE), "--batch-size", "3"]) == 0
    out = capsys.readouterr().out
    assert "eval mode, batch 3" in out and "Result: OK" in out


def test_verify_train_mode(capsys):
    assert cli.main(["verify", str(EXAMPLE), "--train"]) == 0
    assert "train mode" in capsys.readouterr().out


def test_verify_failure_exits_1(monkeypatch, capsys):
    from tf2torch.verify import compare

    monkeypatch.setattr(compare.OutputCheck, "status", property(lambda self: "FAILED"))
    assert cli.main(["verify", str(EXAMPLE)]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_verify_bad_input_exits_2(tmp_path, capsys, models):
    assert cli.main(["verify", str(tmp_path / "missing.keras")]) == 2
    assert cli.main(["verify", str(models["unsupported"])]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == "tf2torch 0.1.0"


# -- the installed console script, and a process without TensorFlow -----------------------------


def _console_script() -> str:
    script = Path(sys.executable).with_name("tf2torch")
    if not script.exists():
        pytest.skip("console script not installed (pip install -e .)")
    return str(script)


def test_console_script_convert_and_unsupported(tmp_path, models):
    out = tmp_path / "out"
    ok = subprocess.run([_console_script(), "convert", str(EXAMPLE), "-o", str(out)], check=False, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (out / "model.safetensors").exists()
    bad_out = tmp_path / "bad"
    bad = subprocess.run([_console_script(), "convert", str(models["unsupported"]), "-o", str(bad_out)], check=False, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and "scale_custom" in bad.stderr
    assert not bad_out.exists()


BLOCK_TF = textwrap.dedent(
    """
    import sys
    sys.modules["tensorflow"] = None
    sys.modules["keras"] = None
    sys.modules["tf_keras"] = None
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("blocker failed")
    from tf2torch.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _run_without_tf(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-c", BLOCK_TF, *args], check=False, capture_output=True, text=True, env=env)


def test_cli_works_without_tensorflow(tmp_path, models):
    """convert and inspect read .keras and .h5 without TensorFlow or Keras; verify says what is missing."""
    import keras

    h5_model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    perturb_weights(h5_model)
    h5_path = tmp_path / "legacy.h5"
    h5_model.save(h5_path)
    for source in (EXAMPLE, h5_path):
        out = tmp_path / f"out_{source.suffix[1:]}"
        done = _run_without_tf("convert", str(source), "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert (out / "model.py").exists() and (out / "model.safetensors").exists()
    inspected = _run_without_tf("inspect", str(models["unsupported"]))
    assert inspected.returncode == 0, inspected.stderr
    assert "3 unsupported" in inspected.stdout
    verify = _run_without_tf("verify", str(EXAMPLE))
    assert verify.returncode == 2
    assert "Traceback" not in verify.stderr and "tensorflow" in verify.stderr.lower()
