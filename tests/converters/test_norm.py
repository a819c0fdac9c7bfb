"""BatchNormalization, LayerNormalization and GroupNormalization against TensorFlow's output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import convert_and_compare

SHAPES = {"2d": (11,), "3d": (23, 5), "4d": (13, 17, 3), "5d": (5, 7, 9, 3)}

BN_KWARGS = {
    "default": {},
    "eps_momentum": {"epsilon": 0.02, "momentum": 0.8},
    "tiny_eps": {"epsilon": 1e-6},
    "no_center": {"center": False},
    "no_scale": {"scale": False},
    "no_center_no_scale": {"center": False, "scale": False, "momentum": 0.9},
}

BN_CASES = [(s, k) for s in SHAPES for k in BN_KWARGS]


def _bn_model(keras, shape, kwargs, trainable=True):
    inp = keras.Input(shape)
    bn = keras.layers.BatchNormalization(**kwargs)
    bn.trainable = trainable
    return keras.Model(inp, bn(inp)), bn


def _inputs(shape, batch, seed=0, scale=2.0, shift=0.7):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch,) + shape) * scale + shift).astype(np.float32)]


@pytest.mark.parametrize("shape_id,kw_id", BN_CASES, ids=[f"{s}-{k}" for s, k in BN_CASES])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_batch_norm(keras, tmp_path, shape_id, kw_id, training):
    model, _ = _bn_model(keras, SHAPES[shape_id], BN_KWARGS[kw_id])
    convert_and_compare(model, tmp_path, training=training, inputs=_inputs(SHAPES[shape_id], 4))


def _torch_bn(module):
    found = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(found) == 1, found
    return found[0]


def _to_torch(x):
    perm = (0, x.ndim - 1) + tuple(range(1, x.ndim - 1)) if x.ndim in (4, 5) else None
    return torch.from_numpy(np.ascontiguousarray(x.transpose(perm) if perm else x))


@pytest.mark.parametrize("shape_id", list(SHAPES), ids=list(SHAPES))
@pytest.mark.parametrize("kw_id", ["default", "eps_momentum", "no_center_no_scale"])
def test_batch_norm_moving_statistics_update(keras, tmp_path, shape_id, kw_id):
    """One training-mode forward: Keras' moving_mean / moving_variance (biased variance in
    Keras 3) must equal torch's running_mean / running_var afterwards."""
    shape = SHAPES[shape_id]
    model, bn = _bn_model(keras, shape, BN_KWARGS[kw_id])
    result = convert_and_compare(model, tmp_path, inputs=_inputs(shape, 3))
    x = _inputs(shape, 5, seed=3)[0]
    y_keras = np.asarray(model(x, training=True))
    module = result.module
    module.train()
    with torch.no_grad():
        y_torch = module(_to_torch(x))
    module.eval()
    tbn = _torch_bn(module)
    np.testing.assert_allclose(tbn.running_mean.numpy(), bn.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tbn.running_var.numpy(), bn.moving_variance.numpy(), rtol=1e-5, atol=1e-6)
    y_torch = y_torch.numpy()
    if x.ndim in (4, 5):
        y_torch = np.moveaxis(y_torch, 1, -1)
    np.testing.assert_allclose(y_torch, y_keras, atol=1e-4 * np.abs(y_keras).max())


@pytest.mark.parametrize("shape_id", ["2d", "4d", "5d"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_frozen_batch_norm(keras, tmp_path, shape_id, training):
    """trainable=False: Keras normalises with the moving statistics even in training."""
    shape = SHAPES[shape_id]
    model, _bn = _bn_model(keras, shape, {"momentum": 0.7}, trainable=False)
    result = convert_and_compare(model, tmp_path, training=training, inputs=_inputs(shape, 4))
    tbn = _torch_bn(result.module)
    assert all(not p.requires_grad for p in tbn.parameters())
    before = (tbn.running_mean.clone(), tbn.running_var.clone())
    result.module.train()
    with torch.no_grad():
        result.module(_to_torch(_inputs(shape, 4, seed=5)[0]))
    result.module.eval()
    assert torch.equal(before[0], tbn.running_mean) and torch.equal(before[1], tbn.running_var)


def test_batch_norm_after_conv_training(keras, tmp_path):
    inp = keras.Input((13, 17, 3))
    x = keras.layers.Conv2D(6, 3, use_bias=False)(inp)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-4)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(4)(x)
    x = keras.layers.BatchNormalization(center=False)(x)
    model = keras.Model(inp, x)
    convert_and_compare(model, tmp_path, training=True, batch_size=5)
    convert_and_compare(model, tmp_path, training=False, batch_size=5, perturb=False)


def test_batch_norm_renorm_unsupported(keras, tmp_path):
    import tf2torch
    from tf2torch.errors import UnsupportedFeature

    model, _ = _bn_model(keras, (13, 17, 3), {"renorm": True})
    model.save(str(tmp_path / "m.keras"))
    with pytest.raises(UnsupportedFeature, match="renorm"):
        tf2torch.convert(str(tmp_path / "m.keras"))


def test_batch_norm_non_channel_axis_unsupported(keras, tmp_path):
    import tf2torch
    from tf2torch.errors import UnsupportedFeature

    model, _ = _bn_model(keras, (13, 17, 3), {"axis": 2})  # axis 1 is channels-first: supported
    model.save(str(tmp_path / "m.keras"))
    with pytest.raises(UnsupportedFeature, match="only the channel axis"):
        tf2torch.convert(str(tmp_path / "m.keras"))


# -- Keras 2 (tf_keras, .h5) -------------------------------------------------------------------


@pytest.mark.parametrize("shape_id", ["2d", "3d", "4d", "5d"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_k2_batch_norm_h5(tmp_path, shape_id, training):
    import tf_keras

    shape = SHAPES[shape_id]
    inp = tf_keras.Input(shape)
    out = tf_keras.layers.BatchNormalization(momentum=0.8, epsilon=0.01)(inp)
    model = tf_keras.Model(inp, out)
    convert_and_compare(model, tmp_path, suffix=".h5", training=training, inputs=_inputs(shape, 4))


@pytest.mark.parametrize("shape_id", ["2d", "4d"])
def test_k2_batch_norm_moving_statistics_update(tmp_path, shape_id):
    """Keras 2: the fused 4D path updates with the Bessel-corrected variance, 2D with the biased."""
    import tf_keras

    shape = SHAPES[shape_id]
    inp = tf_keras.Input(shape)
    bn = tf_keras.layers.BatchNormalization(momentum=0.8)
    model = tf_keras.Model(inp, bn(inp))
    result = convert_and_compare(model, tmp_path, suffix=".h5", inputs=_inputs(shape, 3))
    x = _inputs(shape, 5, seed=3)[0]
    model(x, training=True)
    result.module.train()
    with torch.no_grad():
        result.module(_to_torch(x))
    result.module.eval()
    tbn = _torch_bn(result.module)
    np.testing.assert_allclose(tbn.running_mean.numpy(), bn.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tbn.running_var.numpy(), bn.moving_variance.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_k2_frozen_batch_norm_h5(tmp_path, training):
    import tf_keras

    inp = tf_keras.Input((13, 17, 3))
    bn = tf_keras.layers.BatchNormalization()
    bn.trainable = False
    model = tf_keras.Model(inp, bn(inp))
    result = convert_and_compare(model, tmp_path, suffix=".h5", training=training, inputs=_inputs((13, 17, 3), 4))
    assert all(not p.requires_grad for p in _torch_bn(result.module).parameters())


# -- LayerNormalization -----------------------------------------------------------------------

LN_CASES = {
    "3d_last": {"shape": (23, 6), "kwargs": {"axis": -1}},
    "3d_last_two": {"shape": (23, 6), "kwargs": {"axis": [-2, -1]}},
    "3d_last_two_positive": {"shape": (23, 6), "kwargs": {"axis": [1, 2], "epsilon": 1e-5}},
    "3d_eps": {"shape": (23, 6), "kwargs": {"epsilon": 0.1}},
    "3d_no_center": {"shape": (23, 6), "kwargs": {"center": False}},
    "3d_no_scale": {"shape": (23, 6), "kwargs": {"scale": False}},
    "3d_neither": {"shape": (23, 6), "kwargs": {"center": False, "scale": False, "axis": [-2, -1]}},
    "2d": {"shape": (11,), "kwargs": {"epsilon": 1e-4}},
    "4d_last": {"shape": (13, 17, 3), "kwargs": {}},
    "4d_last_three": {"shape": (13, 17, 3), "kwargs": {"axis": [1, 2, 3]}},
}


@pytest.mark.parametrize("case", list(LN_CASES.values()), ids=list(LN_CASES))
def test_layer_norm(keras, tmp_path, case):
    inp = keras.Input(case["shape"])
    out = keras.layers.LayerNormalization(**case["kwargs"])(inp)
    convert_and_compare(keras.Model(inp, out), tmp_path, inputs=_inputs(case["shape"], 3))


def test_layer_norm_after_conv(keras, tmp_path):
    inp = keras.Input((13, 17, 3))
    x = keras.layers.Conv2D(5, 3)(inp)
    x = keras.layers.LayerNormalization(epsilon=1e-4)(x)
    x = keras.layers.Conv2D(2, 1)(x)
    convert_and_compare(keras.Model(inp, x), tmp_path)


LN_NON_TRAILING = {
    "4d_axis1": ((13, 17, 3), {"axis": 1}),
    "4d_axes1_3": ((13, 17, 3), {"axis": [1, 3], "epsilon": 1e-2}),
    "4d_axes1_2_no_center": ((13, 17, 3), {"axis": [1, 2], "center": False}),
    "3d_axis1": ((23, 6), {"axis": 1}),
    "3d_axis1_no_scale": ((23, 6), {"axis": -2, "scale": False}),
    "3d_axis1_neither": ((23, 6), {"axis": 1, "center": False, "scale": False}),
}


@pytest.mark.parametrize("case", list(LN_NON_TRAILING.values()), ids=list(LN_NON_TRAILING))
def test_layer_norm_non_trailing(keras, tmp_path, case):
    shape, kwargs = case
    inp = keras.Input(shape)
    out = keras.layers.LayerNormalization(**kwargs)(inp)
    convert_and_compare(keras.Model(inp, out), tmp_path, inputs=_inputs(shape, 2))


def test_k2_layer_norm_h5(tmp_path):
    import tf_keras

    inp = tf_keras.Input((23, 6))
    out = tf_keras.layers.LayerNormalization(axis=[1, 2], epsilon=1e-2)(inp)
    convert_and_compare(tf_keras.Model(inp, out), tmp_path, suffix=".h5", inputs=_inputs((23, 6), 3))


GN_CASES = {
    "4d-groups": ((13, 17, 6), {"groups": 3, "epsilon": 0.01}),
    "5d-instance": ((5, 7, 3, 4), {"groups": -1}),
    "3d-no-center": ((23, 8), {"groups": 2, "center": False}),
    "2d-no-scale": ((12,), {"groups": 4, "scale": False}),
}


@pytest.mark.parametrize("case", list(GN_CASES))
def test_group_norm(keras, tmp_path, case):
    shape, kwargs = GN_CASES[case]
    inp = keras.Input(shape)
    model = keras.Model(inp, keras.layers.GroupNormalization(**kwargs)(inp))
    convert_and_compare(model, tmp_path, inputs=_inputs(shape, 3))


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_batch_norm_axis_1(keras, tmp_path, training):
    """Channels-first features (axis=1) on a sequence: torch's BatchNorm1d on (batch, C, steps)."""
    model, _ = _bn_model(keras, (5, 23), {"axis": 1, "momentum": 0.8})
    result = convert_and_compare(model, tmp_path, inputs=_inputs((5, 23), 4), training=training)
    assert ".permute(" not in result.source_code


def test_group_norm_after_conv_train_mode(keras, tmp_path):
    inp = keras.Input((11, 9, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = keras.layers.GroupNormalization(groups=4, epsilon=1e-5)(x)
    model = keras.Model(inp, keras.layers.Conv2D(2, 1)(x))
    result = convert_and_compare(model, tmp_path, inputs=_inputs((11, 9, 3), 2), training=True)
    assert "nn.GroupNorm(4, 8, eps=1e-05)" in result.source_code


def test_k2_group_norm_h5(tmp_path):
    import tf_keras

    inp = tf_keras.Input((9, 7, 6))
    model = tf_keras.Model(inp, tf_keras.layers.GroupNormalization(groups=2, epsilon=0.02)(inp))
    convert_and_compare(model, tmp_path, suffix=".h5", inputs=_inputs((9, 7, 6), 3))


SPECTRAL_CASES = {
    "dense": ((7,), lambda k: k.layers.Dense(5, activation="tanh"), {}),
    "conv2d": ((9, 11, 3), lambda k: k.layers.Conv2D(4, 3, strides=2, padding="same"), {"power_iterations": 3}),
    "conv1d": ((13, 2), lambda k: k.layers.Conv1D(3, 2), {}),
}


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("case", list(SPECTRAL_CASES))
def test_spectral_normalization(keras, tmp_path, case, training):
    """Eval: the stored kernel. Train: Keras divides the kernel in place by its spectral norm
    (power iteration from vector_u) before the call; the torch module does the same."""
    shape, make, kwargs = SPECTRAL_CASES[case]
    inp = keras.Input(shape)
    wrapper = keras.layers.SpectralNormalization(make(keras), **kwargs)
    model = keras.Model(inp, wrapper(inp))
    model(_inputs(shape, 2)[0], training=True)  # a normalized kernel, as after training
    result = convert_and_compare(model, tmp_path, inputs=_inputs(shape, 3), training=training)
    module = dict(result.module.named_modules())[wrapper.name]
    kernel = np.asarray(wrapper.layer.kernel.numpy())
    torch_kernel = module.layer.weight.detach().numpy()
    torch_kernel = torch_kernel.T if kernel.ndim == 2 else np.transpose(torch_kernel, (*range(2, kernel.ndim), 1, 0))
    np.testing.assert_allclose(torch_kernel, kernel, rtol=1e-5, atol=1e-6)  # the same in-place updates
    np.testing.assert_allclose(module.u.numpy(), wrapper.vector_u.numpy(), rtol=1e-5, atol=1e-6)
