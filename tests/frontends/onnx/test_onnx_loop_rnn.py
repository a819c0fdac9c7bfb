"""tf2onnx's Loops of Keras recurrent layers folded into recurrent modules (loop_rnn.py). The
fixtures were written by fixtures/make_tf2onnx_fixtures.py (tf2onnx is not needed here), each
with an input batch and the Keras model's own output on it; onnxruntime runs the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import tf2torch

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name, loops, modules", [
    ("keras_loop_rnns", 7, ['nn.RNN(5, 6, batch_first=True, nonlinearity="relu")',
                            "KerasGRU(6, 5, reset_after=False, return_sequences=True)",
                            "nn.GRU(5, 4, batch_first=True)", "nn.RNN(8, 3, batch_first=True)",
                            "KerasLSTM(3, 5, activation=F.silu, return_sequences=True)",
                            "KerasGRU(5, 4, activation=torch.relu, return_sequences=True)"]),
    ("tf_keras_loop_rnns", 5, ["nn.RNN(5, 6, batch_first=True)",
                               "KerasGRU(6, 5, reset_after=False, return_sequences=True)",
                               "KerasLSTM(5, 6, activation=F.softsign, return_sequences=True)",
                               "nn.RNN(6, 4, batch_first=True)"]),
])
def test_tf2onnx_recurrent_loops_become_recurrent_modules_matching_keras_and_onnxruntime(name, loops, modules):
    import torch

    path = FIXTURES / f"{name}.onnx"
    assert sum(n.op_type == "Loop" for n in onnx.load(str(path)).graph.node) == loops
    result = tf2torch.convert(path)
    for module in modules:
        assert module in result.source_code
    # Every Keras weight trains; frozen are only the zero second biases torch's RNN has and Keras' SimpleRNN not.
    frozen = {n: p for n, p in result.module.named_parameters() if not p.requires_grad}
    assert all(n.endswith("bias_hh_l0") and not p.any() for n, p in frozen.items())
    data = np.load(FIXTURES / f"{name}.npz", allow_pickle=False)
    x, keras_output = data["x"], data["keras"]
    with torch.no_grad():
        out = result.module.eval()(torch.from_numpy(x)).numpy()
    assert out.shape == keras_output.shape
    assert np.max(np.abs(out - keras_output)) <= 1e-5 * np.max(np.abs(keras_output))
    report = result.verify(inputs=[x])
    assert report.ok and report.reference == "onnxruntime"
    expected = result._keras_model(x)[0]
    assert np.max(np.abs(out - expected)) <= 1e-5 * np.max(np.abs(expected))


def _counting_loop(path: Path) -> None:
    """A Loop that sums its input over a trip count: control flow, no recurrent layer."""
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["total_in", "x"], ["total_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("total_in", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("total_out", TensorProto.FLOAT, [2, 3])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "", "x"], ["total"], name="running_sum", body=body)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor("trips", TensorProto.INT64, [], [4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_other_loops_are_refused_naming_the_node(tmp_path, capsys):
    from tf2torch.cli import main

    path = tmp_path / "running_sum.onnx"
    _counting_loop(path)
    out = tmp_path / "out"
    assert main(["convert", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'running_sum' (Loop) is not a Keras SimpleRNN / GRU / LSTM loop" in err
    assert "scan output" in err and "Traceback" not in err
    assert not out.exists()


def test_a_cell_that_is_not_the_keras_cell_is_refused(tmp_path):
    """The body's cell is checked against the recognised Keras cell: a SimpleRNN body whose
    state update gains a term (h + ...) is found out and refused, not silently converted."""
    from onnx import helper

    from tf2torch.errors import UnsupportedFeature

    model = onnx.load(str(FIXTURES / "tf_keras_loop_rnns.onnx"))
    loop = next(n for n in model.graph.node if n.op_type == "Loop")
    body = loop.attribute[0].g
    tanh = next(n for n in body.node if n.op_type == "Tanh")
    state = body.input[3].name
    inner = tanh.input[0]
    tanh.input[0] = inner + "_plus_h"
    body.node.insert(list(body.node).index(tanh), helper.make_node("Add", [inner, state], [inner + "_plus_h"]))
    path = tmp_path / "altered.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UnsupportedFeature, match="does not compute a Keras simple_rnn cell"):
        tf2torch.convert(path)
