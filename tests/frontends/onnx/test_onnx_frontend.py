"""The ONNX frontend: small CNN / MLP graphs (odd spatial sizes, dynamic batch) against onnxruntime,
BatchNorm kept as a module, initializers trainable, bad files rejected cleanly."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto
from onnx_models import (
    GraphBuilder,
    embedding_model,
    nhwc_boundaries,
    pointwise_ops,
    shape_ops,
    small_cnn,
    small_mlp,
    tensordot_dense,
    torch_exported_cnn,
)

import tf2torch
from tf2torch.cli import main
from tf2torch.errors import BadModelFile, VerificationUnavailable
from tf2torch.frontends.onnx.importer import UnsupportedOnnxOps


def _onnxruntime(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _torch(result, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return result.module.eval()(torch.from_numpy(x)).numpy()


def _assert_close(expected: np.ndarray, actual: np.ndarray) -> None:
    assert actual.shape == expected.shape
    assert np.max(np.abs(actual - expected)) <= 1e-5 * np.max(np.abs(expected))


def _trainable_fraction(module) -> float:
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad) / sum(p.numel() for p in params)


def test_tensordot_reshape_reads_sizes_off_another_tensor(tmp_path):
    path = tensordot_dense(tmp_path / "tensordot.onnx")
    result = tf2torch.convert(path)
    assert "nn.Linear(5, 6, bias=False)" in result.source_code
    for shape in [(3, 7, 5, 5), (2, 4, 9, 5)]:  # the sizes follow the input at run time
        x = np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32)
        _assert_close(_onnxruntime(path, x), _torch(result, x))


@pytest.mark.parametrize("batch", [1, 4])
def test_cnn_matches_onnxruntime_on_a_dynamic_batch(tmp_path, batch):
    path = small_cnn(tmp_path / "cnn.onnx")
    result = tf2torch.convert(path)
    x = np.random.default_rng(batch).normal(size=(batch, 3, 19, 23)).astype(np.float32)
    _assert_close(_onnxruntime(path, x), _torch(result, x))
    report = result.verify(batch_size=3)
    assert report.ok and report.reference == "onnxruntime"


def test_cnn_keeps_batchnorm_and_trainable_initializers(tmp_path):
    path = small_cnn(tmp_path / "cnn.onnx")
    result = tf2torch.convert(path)
    code = result.source_code
    assert code.count("nn.BatchNorm2d(8, eps=0.001, momentum=0.05)") == 2  # ONNX momentum 0.95 is torch's 0.05
    assert "groups=4" in code and "dilation=(2, 1)" in code and "nn.ConvTranspose2d(8, 4" in code
    assert ".permute(" not in code  # ONNX is NCHW already: no layout transposes
    module = result.module
    assert _trainable_fraction(module) == 1.0
    # Every float initializer is a parameter, except BatchNorm's running statistics (buffers).
    model = onnx.load(str(path))
    stats = sum(t.dims[0] for t in model.graph.initializer if t.name.endswith(("_bn.mean", "_bn.var")))
    weights = sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.dims) - stats
    assert sum(p.numel() for p in module.parameters()) == weights
    assert module.stem_bn.running_var.shape == (8,)


def test_cnn_batchnorm_trains_with_batch_statistics(tmp_path):
    import torch

    result = tf2torch.convert(small_cnn(tmp_path / "cnn.onnx"))
    module = result.module.train()
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(4, 3, 19, 23)).astype(np.float32))
    before = module.stem_bn.running_mean.clone()
    module(x).sum().backward()
    assert not torch.equal(before, module.stem_bn.running_mean)
    assert module.head.weight.grad is not None and module.stem.weight.grad is not None
    with pytest.raises(VerificationUnavailable, match="inference graph"):
        result.verify(training=True)


def test_mlp_matmul_add_becomes_linear_and_matches(tmp_path):
    path = small_mlp(tmp_path / "mlp.onnx")
    result = tf2torch.convert(path)
    assert "nn.Linear(7, 12)" in result.source_code and "F.gelu(" in result.source_code  # the Erf pattern
    assert "torch.erf(" not in result.source_code
    assert "x.shape[0], 3, 4" in result.source_code  # Reshape's 0 keeps the batch dimension dynamic
    x = np.random.default_rng(3).normal(size=(5, 7)).astype(np.float32)
    _assert_close(_onnxruntime(path, x), _torch(result, x))
    assert _trainable_fraction(result.module) == 1.0


def test_pad_resize_slice_gather_squeeze_match(tmp_path):
    path = shape_ops(tmp_path / "shapes.onnx")
    result = tf2torch.convert(path)
    code = result.source_code
    assert 'mode="reflect"' in code and 'mode="bilinear"' in code and "1::2, -11:12:3]" in code
    x = np.random.default_rng(5).normal(size=(3, 3, 9, 11)).astype(np.float32)
    _assert_close(_onnxruntime(path, x), _torch(result, x))


def test_pointwise_and_reduction_ops_match(tmp_path):
    path = pointwise_ops(tmp_path / "pointwise.onnx")
    result = tf2torch.convert(path)
    assert 'approximate="tanh")' in result.source_code and "alpha=0.7)" in result.source_code
    x = np.random.default_rng(6).normal(size=(3, 2, 5, 3)).astype(np.float32)
    expected, actual = _onnxruntime(path, x), _torch(result, x)
    assert actual.shape == expected.shape
    # Per op (each its own channel block), not only relative to the largest output.
    assert np.allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_gather_from_an_initializer_is_an_embedding(tmp_path):
    import torch

    path = embedding_model(tmp_path / "embed.onnx")
    result = tf2torch.convert(path)
    assert "nn.Embedding(11, 6)" in result.source_code and "nn.Linear(6, 2, bias=False)" in result.source_code
    tokens = np.random.default_rng(0).integers(0, 11, (4, 5))
    with torch.no_grad():
        actual = result.module.eval()(torch.from_numpy(tokens)).numpy()
    _assert_close(_onnxruntime(path, tokens), actual)
    assert result.verify([tokens]).ok


def test_pytorch_export_keeps_module_names_batchnorm_and_a_dynamic_flatten(tmp_path):
    path = torch_exported_cnn(tmp_path / "exported.onnx")
    result = tf2torch.convert(path)
    code = result.source_code
    assert "self.conv = nn.Conv2d(3, 6" in code and "self.bn = nn.BatchNorm2d(6" in code
    assert "self.fc = nn.Linear(48, 5)" in code
    assert "x.reshape(x.shape[0], -1)" in code  # view(x.size(0), -1) through Shape/Gather/Concat
    assert "F.gelu(" in code and "erf" not in code
    assert _trainable_fraction(result.module) == 1.0
    for batch in (1, 3):
        x = np.random.default_rng(batch).normal(size=(batch, 3, 13, 17)).astype(np.float32)
        _assert_close(_onnxruntime(path, x), _torch(result, x))


def test_tf2onnx_style_transpose_pairs_cancel(tmp_path):
    path = nhwc_boundaries(tmp_path / "nhwc.onnx")
    result = tf2torch.convert(path)
    code = result.source_code
    # Only the model's own NHWC boundaries remain: input -> NCHW, output -> NHWC.
    assert code.count(".permute(") == 2
    assert "torch.clamp(x, min=-0.1)" in code and "torch.clamp(x, max=0.3)" in code
    x = np.random.default_rng(2).normal(size=(3, 11, 9, 3)).astype(np.float32)
    _assert_close(_onnxruntime(path, x), _torch(result, x))


def test_cli_convert_verify_and_inspect(tmp_path, capsys):
    path = small_cnn(tmp_path / "cnn.onnx")
    out = tmp_path / "out"
    assert main(["convert", str(path), "-o", str(out), "--verify", "--batch-size", "3"]) == 0
    assert {"model.py", "model.safetensors", "verification.json"} <= {p.name for p in out.iterdir()}
    assert "against onnxruntime" in capsys.readouterr().out
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():  # the generated model.py is a product: lint-clean on ruff's defaults
        done = subprocess.run([str(ruff), "check", "--isolated", str(out / "model.py")], check=False,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout
    # The written files stand alone: load_model() gives onnxruntime's numbers.
    spec = importlib.util.spec_from_file_location("converted_cnn", out / "model.py")
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    x = np.random.default_rng(9).normal(size=(2, 3, 19, 23)).astype(np.float32)
    import torch

    with torch.no_grad():
        _assert_close(_onnxruntime(path, x), generated.load_model().eval()(torch.from_numpy(x)).numpy())
    assert main(["inspect", str(path)]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[3:-1]}
    assert rows["BatchNormalization"] == ["2", "yes"] and rows["Conv"] == ["2", "yes"]
    assert main(["verify", str(path), "--batch-size", "2"]) == 0
    assert "Result: OK" in capsys.readouterr().out
    assert main(["verify", str(path), "--train"]) == 2  # onnxruntime runs inference graphs only
    assert "inference graph" in capsys.readouterr().err


def test_malformed_file_is_rejected_without_output(tmp_path, capsys):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    with pytest.raises(BadModelFile, match="broken.onnx"):
        tf2torch.convert(path)
    out = tmp_path / "out"
    assert main(["convert", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "broken.onnx" in err and "Traceback" not in err
    assert not out.exists()


def test_truncated_model_is_rejected(tmp_path):
    data = small_cnn(tmp_path / "cnn.onnx").read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadModelFile, match="truncated.onnx"):
        tf2torch.convert(path)


def test_external_data_outside_the_model_directory_is_refused(tmp_path):
    g = GraphBuilder()
    y = g.op("Mul", ["x", g.weight("w", (4,))])
    path = g.model([("x", ["batch", 4])], (y, ["batch", 4]), tmp_path / "ext.onnx")
    model = onnx.load(str(path))
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="../../etc/passwd")
    onnx.save(model, str(path))
    with pytest.raises(BadModelFile, match="outside the model's directory"):
        tf2torch.convert(path)


def test_unsupported_ops_are_all_named(tmp_path, capsys):
    g = GraphBuilder()
    y = g.op("Hardmax", [g.op("LpNormalization", ["x"])], axis=1)
    y = g.op("Hardmax", [y], axis=1)
    path = g.model([("x", ["batch", 4])], (y, ["batch", 4]), tmp_path / "odd.onnx")
    with pytest.raises(UnsupportedOnnxOps) as info:
        tf2torch.convert(path)
    assert "Hardmax (x2" in str(info.value) and "LpNormalization (x1" in str(info.value)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[3:-2]}
    assert rows == {"LpNormalization": ["1", "NO"], "Hardmax": ["2", "NO"]}
    assert "Unsupported op types: LpNormalization, Hardmax." in out


def test_unsupported_form_of_a_supported_op_is_a_clear_cli_error(tmp_path, capsys):
    g = GraphBuilder()
    y = g.op("Reshape", ["x", "target_shape"], name="dynamic_reshape")
    graph = onnx.helper.make_graph(
        g.nodes, "net",
        [onnx.helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6]),
         onnx.helper.make_tensor_value_info("target_shape", TensorProto.INT64, [2])],
        [onnx.helper.make_tensor_value_info(y, TensorProto.FLOAT, ["rows", "columns"])])
    path = tmp_path / "reshape.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(path))
    out = tmp_path / "out"
    assert main(["convert", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'dynamic_reshape' (Reshape)" in err and "run-time tensor as input 1" in err and "Traceback" not in err
    assert not out.exists()


def test_readme_lists_exactly_the_registered_ops():
    from tf2torch.frontends.onnx import ops  # noqa: F401  (fills the registry)
    from tf2torch.frontends.onnx.registry import ONNX_OP_IMPORTERS

    readme = (Path(__file__).parents[3] / "README.md").read_text()
    listed = readme.split("Supported ONNX ops: ", 1)[1].split(".\n", 1)[0]
    assert listed == ", ".join(f"`{op}`" for op in sorted(ONNX_OP_IMPORTERS))
