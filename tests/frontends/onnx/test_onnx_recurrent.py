"""ONNX LSTM / GRU / RNN (directions, initial states, linear_before_reset, layouts) folded into
nn.LSTM / nn.GRU / nn.RNN, against onnxruntime (or ONNX's reference evaluator where onnxruntime
has no kernel); the forms that are refused name the node."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper
from onnx_models import GraphBuilder, batch_major_lstm, gru_rnn_recurrent, time_major_recurrent

import tf2torch
from tf2torch.cli import main
from tf2torch.frontends.onnx.importer import UnsupportedOnnxOps


def _onnxruntime(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _torch(module, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return module.eval()(torch.from_numpy(x)).numpy()


def _assert_close(expected: np.ndarray, actual: np.ndarray) -> None:
    assert actual.shape == expected.shape
    assert np.max(np.abs(actual - expected)) <= 1e-5 * np.max(np.abs(expected))


def _trainable_fraction(module) -> float:
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad) / sum(p.numel() for p in params)


def test_reverse_lstm_with_initial_states_and_bidirectional_gru_match(tmp_path):
    path = time_major_recurrent(tmp_path / "rnn.onnx")
    result = tf2torch.convert(path)
    code = result.source_code
    assert "nn.LSTM(5, 4, batch_first=True)" in code and "nn.GRU(4, 3, batch_first=True, bidirectional=True)" in code
    assert ".flip(1)" in code  # direction="reverse": the module reads the flipped steps
    assert ".squeeze(" not in code  # Squeeze of the direction axis and the time-major transposes cancel
    x = np.random.default_rng(0).normal(size=(3, 7, 5)).astype(np.float32)
    _assert_close(_onnxruntime(path, x), _torch(result.module, x))
    assert _trainable_fraction(result.module) == 1.0  # both ONNX biases are trainable parameters
    report = result.verify(batch_size=3)
    assert report.ok and report.reference == "onnxruntime"


def test_lstm_gate_order_and_both_biases(tmp_path):
    """ONNX i, o, f, c blocks land in torch's i, f, g, o; the recurrent bias is bias_hh, trainable."""
    path = time_major_recurrent(tmp_path / "rnn.onnx")
    module = tf2torch.convert(path).module
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    w, b = weights["lstm.W"][0], weights["lstm.B"][0]
    i, o, f, c = np.split(w, 4)
    lstm = module.lstm
    np.testing.assert_array_equal(lstm.weight_ih_l0.detach().numpy(), np.concatenate([i, f, c, o]))
    recurrent_bias = np.split(b[16:], 4)
    np.testing.assert_array_equal(lstm.bias_hh_l0.detach().numpy(), np.concatenate([recurrent_bias[k] for k in (0, 2, 3, 1)]))
    assert lstm.bias_hh_l0.requires_grad


@pytest.mark.parametrize("batch", [1, 4])
def test_gru_reset_before_and_relu_rnn_match_on_a_dynamic_batch(tmp_path, batch):
    path = gru_rnn_recurrent(tmp_path / "rnn.onnx")
    result = tf2torch.convert(path)
    code = result.source_code
    assert "reset_after=False" in code  # linear_before_reset=0: Keras' GRU loop, not nn.GRU
    assert 'nn.RNN(4, 3, batch_first=True, bias=False, nonlinearity="relu", bidirectional=True)' in code
    x = np.random.default_rng(batch).normal(size=(batch, 9, 5)).astype(np.float32)
    _assert_close(_onnxruntime(path, x), _torch(result.module, x))
    assert _trainable_fraction(result.module) == 1.0


def test_batch_major_layout_matches_the_onnx_reference_evaluator(tmp_path):
    """layout=1: onnxruntime has no kernel for it, so the comparison uses onnx.reference."""
    from onnx.reference import ReferenceEvaluator

    path = batch_major_lstm(tmp_path / "rnn.onnx")
    result = tf2torch.convert(path)
    assert ".permute(" not in result.source_code
    x = np.random.default_rng(2).normal(size=(3, 6, 5)).astype(np.float32)
    expected = ReferenceEvaluator(onnx.load(str(path))).run(None, {"sequence": x})[0]
    _assert_close(expected, _torch(result.module, x))


def test_converted_lstm_trains(tmp_path):
    import torch

    module = tf2torch.convert(time_major_recurrent(tmp_path / "rnn.onnx")).module.train()
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(3, 7, 5)).astype(np.float32))
    module(x).square().sum().backward()
    assert module.lstm.bias_hh_l0.grad is not None and module.gru.weight_hh_l0_reverse.grad.abs().sum() > 0


def _lstm_model(path, inputs: list[str], extra: dict | None = None, **attrs):
    g = GraphBuilder(9)
    weights = [g.weight("W", (1, 8, 3)), g.weight("R", (1, 8, 2)), g.weight("B", (1, 16))]
    names = {"lengths": g.constant("lengths", np.array([2, 4], np.int32)), "P": g.weight("P", (1, 6))}
    node_inputs = ["x"] + weights + [names.get(i, i) for i in inputs]
    g.nodes.append(helper.make_node("LSTM", node_inputs, ["y"], name="encoder_lstm", hidden_size=2, **attrs))
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 2, 3])]
    graph_inputs += [helper.make_tensor_value_info(n, TensorProto.INT32, [2]) for n in (extra or {})]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 1, 2, 2])
    model = helper.make_model(helper.make_graph(g.nodes, "net", graph_inputs, [output], g.initializers),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("inputs, attrs, extra, message", [
    ([], {"clip": 3.0}, None, "with a cell clip"),
    ([], {"input_forget": 1}, None, "input_forget=1"),
    (["lengths"], {}, None, "sequence_lens shorter than the sequence"),
    (["run_time_lengths"], {}, {"run_time_lengths": 1}, "run-time sequence_lens"),
    (["", "", "", "P"], {}, None, "peepholes"),
    ([], {"activations": ["HardSigmoid", "Tanh", "Tanh"]}, None, "activations"),
])
def test_unsupported_recurrent_forms_are_clear_cli_errors(tmp_path, capsys, inputs, attrs, extra, message):
    path = _lstm_model(tmp_path / "lstm.onnx", inputs, extra, **attrs)
    out = tmp_path / "out"
    assert main(["convert", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'encoder_lstm' (LSTM)" in err and message in err and "Traceback" not in err
    assert not out.exists()


def test_an_if_is_refused_naming_the_node_and_the_way_out(tmp_path):
    """Of the control-flow ops only tf2onnx's Loops of Keras recurrent layers are folded
    (test_onnx_loop_rnn.py); an If is refused."""
    def branch(name: str, op: str):
        return helper.make_graph([helper.make_node(op, ["x"], [f"{name}_y"])], name, [],
                                 [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [2])])

    node = helper.make_node("If", ["flag"], ["y"], name="rnn/cond", then_branch=branch("then", "Relu"),
                            else_branch=branch("else", "Neg"))
    graph = helper.make_graph([node], "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
                                              helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    path = tmp_path / "if.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(UnsupportedOnnxOps) as error:
        tf2torch.convert(path)
    assert "If (x1, e.g. 'rnn/cond')" in str(error.value) and "tf2torch convert model.keras" in str(error.value)
