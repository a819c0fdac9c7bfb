"""Eval-mode BatchNorm folded into the conv / Dense that feeds it (converters/bn_folding.py):
the same outputs as TensorFlow and as the unfused module, a cache that follows every change of
the weights, and training untouched."""

from __future__ import annotations

import copy
import re
import sys

import numpy as np
import pytest
import torch

from conftest import convert_and_compare, set_batchnorm_statistics

BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
# Folded vs unfused whole model: fp32 rounding through several layers (a stale cache is off by
# far more); one folded layer is held to 1e-6.
MODEL_TOLERANCE = 1e-5


def _mobile_block(keras):
    """MobileNetV2 / EfficientNet-style: stem conv, expand, depthwise, project, residual."""
    inputs = keras.Input((16, 13, 3))  # even height: TF pads the stem asymmetrically (SameConv2d)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.9, name="stem_bn")(x)
    stem = keras.layers.ReLU(6.0, name="stem_relu")(x)
    x = keras.layers.Conv2D(16, 1, use_bias=False, name="expand")(stem)
    x = keras.layers.BatchNormalization(name="expand_bn")(x)
    x = keras.layers.ReLU(6.0, name="expand_relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="depthwise")(x)
    x = keras.layers.BatchNormalization(center=False, name="depthwise_bn")(x)
    x = keras.layers.Activation("swish", name="depthwise_swish")(x)
    x = keras.layers.Conv2D(8, 1, name="project")(x)  # with a bias
    x = keras.layers.BatchNormalization(scale=False, epsilon=1e-2, name="project_bn")(x)
    x = keras.layers.Add(name="add")([stem, x])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(6, name="fc")(x)
    x = keras.layers.BatchNormalization(name="fc_bn")(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs)


def _resnet_block(keras):
    """ResNet-style, with a frozen BatchNorm (Keras trainable=False) and a 1-D conv branch."""
    inputs = keras.Input((11, 9, 4))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv1")(inputs)
    bn = keras.layers.BatchNormalization(name="bn1")
    bn.trainable = False
    x = bn(x)
    x = keras.layers.Activation("relu", name="relu1")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="valid", dilation_rate=1, name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.Reshape((20, 6), name="to_steps")(x)
    x = keras.layers.Conv1D(5, 3, padding="causal", name="conv1d")(x)
    x = keras.layers.BatchNormalization(name="bn1d")(x)
    outputs = keras.layers.GlobalMaxPooling1D(name="pool")(x)
    return keras.Model(inputs, outputs)


MODELS = {"mobile": (_mobile_block, 5, (16, 13, 3)), "resnet": (_resnet_block, 3, (11, 9, 4))}


def _convert(tmp_path, name, training=False):
    import keras

    build, folds, shape = MODELS[name]
    model = build(keras)
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((5, *shape)).astype(np.float32)]
    set_batchnorm_statistics(model, inputs[0])
    result = convert_and_compare(model, tmp_path, batch_size=5, training=training, inputs=inputs, perturb=False)
    source = result.source_code
    assert source.count("_bn(self.") == folds, source
    return result, torch.from_numpy(inputs[0]).permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """name -> (ConversionResult, NCHW input), converted once and compared with TensorFlow
    in eval mode; tests use a fresh copy of the module."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _convert(tmp_path_factory.mktemp(name), name)
        result, x = cache[name]
        return result, copy.deepcopy(result.module).eval(), x

    return get


def _unfused(module, x):
    """The module's output computed by the separate layers: a hook on every BatchNorm is
    something that must see it run, so nothing is folded."""
    handles = [m.register_forward_pre_hook(lambda *args: None) for m in module.modules() if isinstance(m, BATCH_NORMS)]
    try:
        with torch.no_grad():
            return module(x)
    finally:
        for handle in handles:
            handle.remove()


def _assert_relative(actual, expected, tolerance=1e-6):
    """max |actual - expected| <= tolerance * max |expected|."""
    scale = expected.abs().max()
    assert (actual - expected).abs().max() <= tolerance * scale, ((actual - expected).abs().max(), scale)


def _caches(module):
    return [m.__dict__.get("folded") for m in module.modules() if isinstance(m, BATCH_NORMS)]


@pytest.mark.parametrize("name", list(MODELS))
def test_folded_module_trains_like_tensorflow(tmp_path, name):
    _convert(tmp_path, name, training=True)  # (eval mode: the `converted` fixture)


def _pairs(module, source):
    """(layer, bn, helper) for every folding call in forward()."""
    found = re.findall(r"(\w+_bn)\(self\.(\w+), self\.(\w+), ", source)
    helpers = sys.modules[type(module).__module__]
    return [(module.get_submodule(layer), module.get_submodule(bn), getattr(helpers, helper)) for helper, layer, bn in found]


@pytest.mark.parametrize("name", list(MODELS))
def test_each_folded_layer_matches_unfused_within_1e_6(converted, name):
    result, module, _ = converted(name)
    pairs = _pairs(module, result.source_code)
    assert len(pairs) == MODELS[name][1]
    torch.manual_seed(0)
    for layer, bn, helper in pairs:
        if isinstance(layer, torch.nn.Linear):
            x = torch.randn(5, layer.in_features)
        else:
            x = torch.randn(5, layer.in_channels, *[9 + i for i in range(layer.weight.dim() - 2)])
        with torch.no_grad():
            folded = helper(layer, bn, x)
            assert bn.__dict__.get("folded") is not None  # the cached folded path ran
            _assert_relative(folded, bn(layer(x)))


@pytest.mark.parametrize("name", list(MODELS))
def test_folded_model_rounds_like_the_unfused_one(converted, name):
    """Whole model: the folded module is as close to an fp64 evaluation as the unfused one
    (both carry fp32 rounding of the order of 1e-6 after several layers)."""
    _, module, x = converted(name)
    with torch.no_grad():
        folded = module(x)
    unfused = _unfused(module, x)
    exact = _unfused(copy.deepcopy(module).double(), x.double())
    folded_error = (folded.double() - exact).abs().max() / exact.abs().max()
    unfused_error = (unfused.double() - exact).abs().max() / exact.abs().max()
    assert folded_error <= max(2 * unfused_error, 1e-6), (folded_error, unfused_error)
    with torch.enable_grad():  # recomputed with autograd: the same numbers
        _assert_relative(module(x).detach(), folded, 1e-6)


def test_cache_follows_optimizer_step_load_state_dict_and_train(converted):
    _, module, x = converted("mobile")
    original = {k: v.clone() for k, v in module.state_dict().items()}
    with torch.no_grad():
        before = module(x)

    # A training step changes weights and running statistics; eval() must see the new ones.
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05)
    module.train()
    module(x).square().mean().backward()
    optimizer.step()
    module.eval()
    with torch.no_grad():
        after_step = module(x)
    assert not torch.allclose(after_step, before)
    _assert_relative(after_step, _unfused(module, x), MODEL_TOLERANCE)

    # An optimizer step alone (no training-mode pass: statistics unchanged).
    optimizer.zero_grad()
    with torch.enable_grad():
        module(x).square().mean().backward()
    optimizer.step()
    with torch.no_grad():
        after_eval_step = module(x)
    assert not torch.allclose(after_eval_step, after_step)
    _assert_relative(after_eval_step, _unfused(module, x), MODEL_TOLERANCE)

    # load_state_dict copies in place: back to the original numbers.
    module.load_state_dict(original)
    with torch.no_grad():
        _assert_relative(module(x), before)

    # An in-place edit of one statistic under no_grad.
    bn = module.get_submodule("depthwise_bn")
    with torch.no_grad():
        bn.running_var.mul_(3.0)
        edited = module(x)
    assert not torch.allclose(edited, before)
    _assert_relative(edited, _unfused(module, x), MODEL_TOLERANCE)

    # A replaced tensor (new memory), e.g. model.double() or .to().
    module.double()
    with torch.no_grad():
        _assert_relative(module(x.double()), _unfused(module, x.double()))


def test_eval_gradients_reach_both_layers(converted):
    _, module, x = converted("mobile")
    grads = []
    for fold in (True, False):
        module.zero_grad()
        handles = [] if fold else [m.register_forward_pre_hook(lambda *a: None) for m in module.modules()
                                   if isinstance(m, BATCH_NORMS)]
        inputs = x.clone().requires_grad_(True)
        (module(inputs) + 3.0).square().sum().backward()  # no cancellation in the bias gradients
        for handle in handles:
            handle.remove()
        grads.append({name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
                     | {"input": inputs.grad})
    folded, unfused = grads
    assert folded.keys() == unfused.keys() and "expand.weight" in folded and "expand_bn.weight" in folded
    for name in folded:
        _assert_relative(folded[name], unfused[name], 1e-5)


def test_dynamo_and_fx_see_separate_layers(converted):
    _, module, x = converted("resnet")
    with torch.no_grad():
        expected = module(x)
        compiled = torch.compile(module, backend="eager", fullgraph=True)
        _assert_relative(compiled(x), expected, MODEL_TOLERANCE)
    traced = torch.fx.symbolic_trace(module)  # traces into the Keras BatchNorm classes
    functions = [node.target for node in traced.graph.nodes if node.op == "call_function"]
    assert functions.count(torch.nn.functional.batch_norm) == 3
    with torch.no_grad():
        _assert_relative(traced(x), expected, MODEL_TOLERANCE)


def test_optimize_for_inference_folds_the_same_pairs(converted):
    from tf2torch import optimize_for_inference

    result, module, x = converted("mobile")
    assert "SameConv2d" in result.source_code
    fast = optimize_for_inference(module)
    assert not any(isinstance(m, BATCH_NORMS) for m in fast.modules())
    with torch.no_grad():
        _assert_relative(fast(x), module(x), MODEL_TOLERANCE)


def test_not_folded_when_the_layer_is_read_elsewhere(keras, tmp_path):
    inputs = keras.Input((9, 7, 3))
    conv = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(conv)
    outputs = keras.layers.Add(name="add")([conv, x])
    result = convert_and_compare(keras.Model(inputs, outputs), tmp_path, batch_size=3)
    assert "_bn(" not in result.source_code
