"""The 40 keras.applications models exported to ONNX by tf2onnx, converted from the .onnx file and
compared with onnxruntime (zoo marker: `pytest -m zoo tests/e2e/test_applications_onnx.py`).

tf2onnx is not a tf2torch dependency: the sweep is skipped without it (install it apart, e.g.
`pip install --no-deps --target DIR tf2onnx` and put DIR on PYTHONPATH; its own requirements are
already in the TensorFlow stack). Weights and BatchNorm statistics are those of
test_applications.build_application (perturbed, realistic statistics)."""

from __future__ import annotations

import numpy as np
import pytest
from test_applications import MIN_SIZE, all_models, build_application

pytestmark = pytest.mark.zoo

# Issue 17's bounds: max abs error <= 1e-5 x max |logit|, 1e-4 for deep models (here: more than
# 150 Keras layers, where fp32 rounding of two different kernels adds up beyond 1e-5).
BOUND, DEEP_BOUND, DEEP_LAYERS = 1e-5, 1e-4, 150


def export_with_tf2onnx(model, path) -> None:
    import tensorflow as tf
    tf2onnx = pytest.importorskip("tf2onnx")

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image"),)
    function = tf.function(lambda x: model(x, training=False), input_signature=spec)
    tf2onnx.convert.from_function(function, input_signature=spec, opset=17, output_path=str(path))


@pytest.mark.parametrize("name", all_models())
def test_application_through_tf2onnx_matches_onnxruntime(name, tmp_path):
    import onnx
    import onnxruntime
    import torch

    import tf2torch

    pytest.importorskip("tf2onnx")
    model, sample = build_application(name, MIN_SIZE.get(name, 32))
    path = tmp_path / f"{name}.onnx"
    export_with_tf2onnx(model, path)
    result = tf2torch.convert(path)
    x = sample(2, 1)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # the file's own graph
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    expected = session.run(None, {"image": x})[0]
    with torch.no_grad():
        actual = result.module.eval()(torch.from_numpy(x)).numpy()
    bound = DEEP_BOUND if len(model.layers) > DEEP_LAYERS else BOUND
    error, scale = float(np.max(np.abs(actual - expected))), float(np.max(np.abs(expected)))
    params = list(result.module.parameters())
    fraction = sum(p.numel() for p in params if p.requires_grad) / sum(p.numel() for p in params)
    # BatchNorm stays a module wherever the file still has one (tf2onnx folds some into convs).
    batch_norms = sum(n.op_type == "BatchNormalization" for n in onnx.load(str(path)).graph.node)
    kept = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in result.module.modules())
    print(f"\nONNX-ZOO {name}: error/scale {error / scale:.2e} (bound {bound:g}), trainable {fraction:.2f}, "
          f"BatchNorm in file {batch_norms}, kept {kept}, Keras BatchNorm layers "
          f"{sum(type(layer).__name__ == 'BatchNormalization' for layer in model.layers)}")
    assert error <= bound * scale, f"{name}: max abs error {error:.3g} > {bound:g} x {scale:.3g}"
    assert fraction == 1.0
    assert kept == batch_norms
