"""fake_quant and rounded kernels (TFLite --keep-quantization) against TFLite's quantization
rule written out in numpy: q = clip(round_half_even(x / scale) + zero_point, qmin, qmax),
real = (q - zero_point) * scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tf2torch.codegen.emit import emit_module
from tf2torch.codegen.loader import instantiate
from tf2torch.ir import Graph, Param, SourceRef, TensorSpec, Value
from tf2torch.passes.pipeline import run_passes


def tflite_round(x: np.ndarray, scale, zero_point, qmin: int, qmax: int) -> np.ndarray:
    q = np.clip(np.rint(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def _graph(grid: dict | None = None, kernel: np.ndarray | None = None) -> Graph:
    graph = Graph("quant", "tflite")
    x = Value("x", TensorSpec((None, 7), "float32"))
    graph.inputs.append(x)
    graph.input_names.append("x")
    y = x
    if kernel is not None:
        params = {"kernel": Param(kernel, "IO"), "bias": Param(np.linspace(-1, 1, 4, dtype=np.float32), "O")}
        node = graph.add_node("dense", [y], [TensorSpec((None, 4), "float32")], SourceRef("tflite", "dense", "fc"),
                              {"in_features": 7, "units": 4}, params)
        node.attrs["weight_grid"] = {"param": "kernel", "qmin": -128, "qmax": 127, **grid}
        y = node.outputs[0]
    if grid is None:
        attrs = {"scale": 0.05, "zero_point": 3, "qmin": 0, "qmax": 255}
        y = graph.add_node("fake_quant", [y], [y.spec], SourceRef("tflite", "QUANTIZE", "q"), attrs).outputs[0]
    graph.outputs.append(y)
    graph.output_names.append("y")
    return run_passes(graph)


def _module(graph: Graph) -> tuple[torch.nn.Module, str]:
    generated = emit_module(graph, "quant.tflite", "Quant")
    return instantiate(generated.source, generated.class_name, generated.state), generated.source


def test_fake_quant_rounds_to_the_uint8_grid_with_a_straight_through_gradient():
    module, source = _module(_graph())
    assert "fake_quantize(x, 0.05, 3, 0, 255)" in source
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 4, size=(5, 7)).astype(np.float32))
    x.requires_grad_(True)
    y = module(x)
    np.testing.assert_allclose(y.detach().numpy(), tflite_round(x.detach().numpy(), 0.05, 3, 0, 255), atol=1e-6)
    y.sum().backward()
    inside = (x.detach() / 0.05 + 3 >= 0) & (x.detach() / 0.05 + 3 <= 255)
    assert torch.equal(x.grad, inside.float())  # 1 inside the grid's range, 0 where it clips


@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
def test_rounded_kernel_stays_a_float_parameter(per_channel):
    rng = np.random.default_rng(1)
    scale = rng.uniform(0.01, 0.03, size=4).astype(np.float32) if per_channel else np.array([0.02], np.float32)
    kernel = rng.normal(0, 0.5, size=(7, 4)).astype(np.float32)  # (in, units), deliberately off the grid
    module, source = _module(_graph({"scale": scale, "zero_point": np.zeros(len(scale), np.int64)}, kernel))
    assert "self.fc = quantized_weight(nn.Linear(7, 4))" in source
    fc = module.fc
    assert [n for n, _ in fc.named_parameters()] == ["bias", "parametrizations.weight.original"]
    np.testing.assert_array_equal(fc.parametrizations.weight.original.detach().numpy(), kernel.T)
    rounded = tflite_round(kernel.T, np.broadcast_to(scale, (4,))[:, None], 0, -128, 127)
    np.testing.assert_allclose(fc.weight.detach().numpy(), rounded, rtol=1e-6)
    x = torch.from_numpy(rng.normal(size=(3, 7)).astype(np.float32))
    out = module(x)
    np.testing.assert_allclose(out.detach().numpy(), x.numpy() @ rounded.T + np.linspace(-1, 1, 4), rtol=1e-5,
                               atol=1e-6)
    out.sum().backward()
    assert fc.parametrizations.weight.original.grad is not None  # trainable through the rounding


# -- integer kernels (attrs["integer_kernel"]) against XNNPACK's int8 formulas in numpy integers --

F32 = np.float32


def _quantized_input(graph: Graph, name: str, shape: tuple, scale: float, zero_point: int) -> Value:
    x = Value(name, TensorSpec(shape, "float32"))
    graph.inputs.append(x)
    graph.input_names.append(name)
    attrs = {"scale": scale, "zero_point": zero_point, "qmin": -128, "qmax": 127}
    return graph.add_node("fake_quant", [x], [x.spec], SourceRef("tflite", "QUANTIZE", f"{name}_q"), attrs).outputs[0]


def _on_grid(rng, shape, scale: float, zero_point: int) -> tuple[np.ndarray, np.ndarray]:
    """Random int8 values and the real values they stand for, as the file's tensors are."""
    q = rng.integers(-128, 128, size=shape)
    return q, ((q - zero_point) * F32(scale)).astype(np.float32)


def test_integer_dense_is_xnnpack_integer_arithmetic():
    """Exact int32 sums, then the float32 multiplier fl32(fl32(sx * sw) / sy), rounded half to
    even: bit for bit, on an output range (uint8-like 0..200) other than int8's."""
    rng = np.random.default_rng(3)
    sx, zx, sy, zy = 0.037, 5, 0.11, -7
    sw = rng.uniform(0.002, 0.01, size=4).astype(np.float32)
    w_int = rng.integers(-127, 128, size=(4, 7))
    b_int = rng.integers(-3000, 3000, size=4)
    acc_scale = F32(sx) * sw
    graph = Graph("quant", "tflite")
    x = _quantized_input(graph, "x", (None, 7), sx, zx)
    params = {"kernel": Param((w_int * sw[:, None]).T.astype(np.float32), "IO"),
              "bias": Param((b_int * acc_scale.astype(np.float64)).astype(np.float32), "O")}
    node = graph.add_node("dense", [x], [TensorSpec((None, 4), "float32")], SourceRef("tflite", "dense", "fc"),
                          {"in_features": 7, "units": 4}, params)
    node.attrs["weight_grid"] = {"param": "kernel", "qmin": -128, "qmax": 127, "scale": sw,
                                 "zero_point": np.zeros(4, np.int64)}
    node.attrs["integer_kernel"] = {"kind": "dense", "input_scales": [sx], "scale": sy, "zero_point": zy,
                                    "qmin": 0, "qmax": 200}
    graph.outputs.append(node.outputs[0])
    graph.output_names.append("y")
    module, source = _module(run_passes(graph))
    assert f"integer_layer(self.fc, x, {sx!r}, {sy!r}, {zy}, 0, 200)" in source
    q, real = _on_grid(rng, (64, 7), sx, zx)
    acc = (q - zx) @ w_int.T + b_int
    expected_q = np.clip(np.rint(acc.astype(np.float32) * ((acc_scale / F32(sy)).astype(np.float32))) + zy, 0, 200)
    got = module(torch.from_numpy(real))
    np.testing.assert_array_equal(got.detach().numpy(), ((expected_q - zy) * F32(sy)).astype(np.float32))
    got.sum().backward()  # straight through every rounding: the float parameters get gradients
    assert module.fc.parametrizations.weight.original.grad.abs().sum() > 0 and module.fc.bias.grad.abs().sum() > 0


@pytest.mark.parametrize("fn", ["add", "sub"])
def test_integer_add_is_xnnpack_fixed_point(fn):
    """XNNPACK's int8 add: multipliers lrintf(scale_ratio * 2**shift) with 21 bits for the larger
    ratio, a rounding bias of 2**(shift - 1), an arithmetic shift right; sub negates b's."""
    rng = np.random.default_rng(4)
    sa, za, sb, zb, sy, zy = 0.021, -3, 0.0537, 10, 0.047, 2
    graph = Graph("quant", "tflite")
    a = _quantized_input(graph, "a", (None, 9), sa, za)
    b = _quantized_input(graph, "b", (None, 9), sb, zb)
    attrs = {"fn": fn, "operands": [("value", 0), ("value", 1)], "exprs": [],
             "integer_kernel": {"kind": fn, "input_scales": [sa, sb], "scale": sy, "zero_point": zy,
                                "qmin": -128, "qmax": 127}}
    node = graph.add_node("tf_binary", [a, b], [TensorSpec((None, 9), "float32")], SourceRef("tflite", fn, "s"), attrs)
    graph.outputs.append(node.outputs[0])
    graph.output_names.append("y")
    module, source = _module(run_passes(graph))
    assert "integer_add(" in source and (fn == "add") == (f", {-sb!r}, " not in source)
    qa, ra = _on_grid(rng, (200, 9), sa, za)
    qb, rb = _on_grid(rng, (200, 9), sb, zb)
    ratios = [F32(sa) / F32(sy), (1 if fn == "add" else -1) * (F32(sb) / F32(sy))]
    shift = 20 - (int(np.array(max(abs(r) for r in ratios), np.float32).view(np.int32)) >> 23) + 127
    ma, mb = (int(np.rint(r * F32(2.0**shift))) for r in ratios)
    acc = (1 << (shift - 1)) + (qa - za) * ma + (qb - zb) * mb
    expected_q = np.clip((acc >> shift) + zy, -128, 127)
    got = module(torch.from_numpy(ra), torch.from_numpy(rb)).detach().numpy()
    np.testing.assert_array_equal(got, ((expected_q - zy) * F32(sy)).astype(np.float32))
