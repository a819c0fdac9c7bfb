"""The written model.py stands alone: lint-clean, no tf2torch import, strict loading,
torch.export with a dynamic batch, any batch size, and no runtime transposes in an NCHW CNN."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tf2torch
from conftest import perturb_weights

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "small_cnn.keras"
RUFF = Path(sys.executable).with_name("ruff")


def _conv1d_model(path: Path) -> Path:
    import keras

    inputs = keras.Input((9, 4), name="signal")
    x = keras.layers.Conv1D(6, 3, padding="same", name="conv")(inputs)
    skip = keras.layers.Dense(6, name="proj")(inputs)
    x = keras.layers.Add(name="add")([x, skip])
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = keras.layers.Dense(2, name="out")(x)
    model = keras.Model(inputs, outputs, name="seq_net")
    perturb_weights(model)
    model.save(path)
    return path


@pytest.fixture(scope="module", params=["small_cnn", "conv1d"])
def written(request, tmp_path_factory):
    """(output directory, ConversionResult) for each model."""
    out = tmp_path_factory.mktemp(request.param)
    source = EXAMPLE if request.param == "small_cnn" else _conv1d_model(out / "seq_net.keras")
    result = tf2torch.convert(source)
    result.save(out / "generated")
    return out / "generated", result


def _import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _example_inputs(result, batch: int) -> tuple[torch.Tensor, ...]:
    return tuple(
        torch.randn([batch if d is None else d for d in v.torch_shape]) for v in result.graph.inputs
    )


def test_ruff_clean(written):
    directory, _ = written
    if not RUFF.exists():
        pytest.skip("ruff is not installed in this environment")
    done = subprocess.run([str(RUFF), "check", "--isolated", str(directory / "model.py")], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_tf2torch_import(written):
    directory, _ = written
    imports = [line for line in (directory / "model.py").read_text().splitlines() if line.lstrip().startswith(("import ", "from "))]
    assert imports and not any("tf2torch" in line for line in imports)


def test_load_model_is_strict_and_matches_the_live_module(written, tmp_path):
    directory, result = written
    generated = _import_file(directory / "model.py", f"standalone_{result.class_name}")
    assert "strict=True" in (directory / "model.py").read_text()
    model = generated.load_model(directory / "model.safetensors").eval()
    inputs = _example_inputs(result, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(*inputs), result.module(*inputs), rtol=0, atol=0)
    # strict: a weights file with a missing tensor is refused.
    from safetensors.torch import load_file, save_file

    state = load_file(str(directory / "model.safetensors"))
    state.pop(min(state))
    save_file(state, str(tmp_path / "partial.safetensors"))
    with pytest.raises(RuntimeError, match="Missing key"):
        generated.load_model(tmp_path / "partial.safetensors")


@pytest.mark.parametrize("batch", [1, 5])
def test_runs_with_any_batch(written, batch):
    _, result = written
    module = result.module.eval()
    with torch.no_grad():
        output = module(*_example_inputs(result, batch))
    outputs = output if isinstance(output, (tuple, list)) else (output,)
    assert all(o.shape[0] == batch for o in outputs)


def test_torch_export_with_dynamic_batch(written):
    _, result = written
    module = result.module.eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    inputs = _example_inputs(result, 3)
    shapes = tuple({0: batch} for _ in inputs)
    exported = torch.export.export(module, inputs, dynamic_shapes=shapes)
    for size in (1, 5):
        other = _example_inputs(result, size)
        with torch.no_grad():
            torch.testing.assert_close(exported.module()(*other), module(*other))


def test_nchw_cnn_forward_has_no_transpose():
    result = tf2torch.convert(EXAMPLE)
    exported = torch.export.export(result.module.eval(), (torch.randn(2, 3, 33, 35),))
    targets = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
    assert any("conv2d" in target or "convolution" in target for target in targets)
    assert not any(word in target for target in targets for word in ("permute", "transpose", "movedim"))
    main_class = result.source_code.split(f"class {result.class_name}(nn.Module)", 1)[1]
    forward = main_class.split("def forward", 1)[1].split("def load_model", 1)[0]
    assert "permute" not in forward and "transpose" not in forward


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_torch_fx_traces_the_module(written, training):
    _, result = written
    module = result.module.train(training)
    traced = torch.fx.symbolic_trace(module)
    inputs = _example_inputs(result, 4)
    torch.manual_seed(0)
    expected = module(*inputs)
    torch.manual_seed(0)
    torch.testing.assert_close(traced(*inputs), expected)
    module.eval()


def test_torch_fx_traces_frozen_batch_norm(tmp_path):
    import keras

    inputs = keras.Input((7, 9, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    frozen = keras.layers.BatchNormalization()
    frozen.trainable = False
    model = keras.Model(inputs, frozen(x))
    perturb_weights(model)
    model.save(tmp_path / "frozen.keras")
    module = tf2torch.convert(tmp_path / "frozen.keras").module.train()
    traced = torch.fx.symbolic_trace(module)
    x = torch.randn(2, 3, 7, 9)
    torch.testing.assert_close(traced(x), module(x))
