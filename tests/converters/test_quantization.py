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
