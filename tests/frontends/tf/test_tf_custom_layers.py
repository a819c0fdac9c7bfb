"""Custom Keras layers without a converter, traced through the TF frontend (opt-in only)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pytest
import torch
from tf_frontend_helpers import assert_matches, tf_trainable_count, trainable_count, training_step_changes

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import tf2torch


class SinLayer(keras.layers.Layer):
    def call(self, inputs):
        return tf.math.sin(inputs)


class DampedLoop(keras.layers.Layer):
    """Applies x <- tanh(x @ w) + 0.5 x for `steps` iterations, with tf.while_loop."""

    def __init__(self, steps=3, **kwargs):
        super().__init__(**kwargs)
        self.steps = steps

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1], shape[-1]), initializer="glorot_uniform", name="w")

    def call(self, x):
        def body(i, y):
            return i + 1, tf.tanh(tf.matmul(y, self.w)) + 0.5 * y

        return tf.while_loop(lambda i, y: i < self.steps, body, [tf.constant(0), x])[1]

    def get_config(self):
        return {**super().get_config(), "steps": self.steps}


def _model(layer, shape=(7,)):
    inputs = keras.Input(shape)
    x = keras.layers.Dense(5, name="proj")(inputs)
    x = layer(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


def _save(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(str(path))
    return str(path)


def test_sin_layer_becomes_torch_sin(tmp_path):
    model = _model(SinLayer(name="sine"))
    result = tf2torch.convert(_save(model, tmp_path), custom_objects={"SinLayer": SinLayer})
    assert "class SinLayer(nn.Module):" in result.source_code
    assert "return torch.sin(x)" in result.source_code
    assert "self.sine = SinLayer()" in result.source_code
    report = result.verify(batch_size=3, keras_model=model)
    assert report.ok, report.table()
    assert trainable_count(result.module) == tf_trainable_count(model.trainable_weights)
    training_step_changes(result)


def test_custom_layer_is_refused_without_opt_in(tmp_path):
    model = _model(SinLayer(name="sine"))
    with pytest.raises(tf2torch.UnsupportedLayers, match="SinLayer"):
        tf2torch.convert(_save(model, tmp_path))


def test_custom_layer_with_while_loop(tmp_path):
    model = _model(DampedLoop(steps=4, name="loop"))
    result = tf2torch.convert(_save(model, tmp_path), custom_objects={"DampedLoop": DampedLoop})
    assert "while self.cond(" in result.source_code
    for batch in (3, 2):
        report = result.verify(batch_size=batch, keras_model=model)
        assert report.ok, report.table()
    assert trainable_count(result.module) == tf_trainable_count(model.trainable_weights)
    training_step_changes(result)


def test_while_loop_in_saved_model(tmp_path):
    class Iterate(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.random.default_rng(0).standard_normal((6, 6)).astype(np.float32) * 0.4, name="w")

        @tf.function(input_signature=[tf.TensorSpec((None, 6), tf.float32)])
        def __call__(self, x):
            def body(i, y):
                return i + 1, tf.nn.relu(tf.matmul(y, self.w)) - 0.1 * y

            return tf.while_loop(lambda i, y: i < 5, body, [tf.constant(0), x])[1]

    module = Iterate()
    tf.saved_model.save(module, str(tmp_path / "loop"))
    result = tf2torch.convert(str(tmp_path / "loop"))
    assert_matches(result, batch_sizes=(3, 4))
    assert trainable_count(result.module) == tf_trainable_count(module.trainable_variables)
    training_step_changes(result)


@keras.saving.register_keras_serializable(package="tf2torch_tf_tests")
class GatedTanh(keras.layers.Layer):
    def build(self, shape):
        self.gate = self.add_weight(shape=(shape[-1],), initializer="zeros", name="gate")

    def call(self, x):
        return tf.tanh(x) * tf.sigmoid(self.gate + x)


def test_registered_layer_traced_with_trace_custom_layers(tmp_path):
    model = _model(GatedTanh(name="gated"))
    model.get_layer("gated").set_weights([np.linspace(-1, 1, 5).astype(np.float32)])
    result = tf2torch.convert(_save(model, tmp_path), trace_custom_layers=True)
    assert "class GatedTanh(nn.Module):" in result.source_code
    for batch in (3, 1):
        report = result.verify(batch_size=batch, keras_model=model)
        assert report.ok, report.table()
    assert trainable_count(result.module) == tf_trainable_count(model.trainable_weights)
    training_step_changes(result)


@keras.saving.register_keras_serializable(package="tf2torch_tf_tests")
class GatedProjection(keras.layers.Layer):
    """Own variable `scale` plus two Dense sub-layers (created proj, then gate: their
    attribute names sort the other way, as Keras' .keras archive stores them)."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.proj = keras.layers.Dense(units, name="inner")
        self.gate = keras.layers.Dense(units, activation="sigmoid")

    def build(self, shape):
        self.scale = self.add_weight(shape=(self.units,), initializer="ones", name="scale")
        self.proj.build(shape)
        self.gate.build(shape)

    def call(self, x):
        return self.proj(x) * self.gate(x) * self.scale

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _gated_model():
    from conftest import perturb_weights

    model = _model(GatedProjection(units=6, name="gated_proj"))
    layer = model.get_layer("gated_proj")
    rng = np.random.default_rng(3)
    layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    perturb_weights(model)
    return model


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_sub_layer_weights_are_the_files_when_traced(tmp_path, suffix):
    model = _gated_model()
    path = str(tmp_path / f"model{suffix}")
    model.save(path)
    result = tf2torch.convert(path, custom_objects={"GatedProjection": GatedProjection})
    report = result.verify(batch_size=3, keras_model=model)
    assert report.ok, report.table()
    assert trainable_count(result.module) == tf_trainable_count(model.trainable_weights)


class GatedProjectionModule(torch.nn.Module):
    def __init__(self, features: int, units: int) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(units))
        self.proj = torch.nn.Linear(features, units)
        self.gate = torch.nn.Linear(features, units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x) * torch.sigmoid(self.gate(x)) * self.scale


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_registered_converter_receives_sub_layer_weights_in_keras_order(tmp_path, suffix):
    model = _gated_model()
    path = str(tmp_path / f"model{suffix}")
    model.save(path)
    received = []

    @tf2torch.register_layer("GatedProjection")
    def convert_gated(config, weights):
        received.append(weights)
        scale, proj_kernel, proj_bias, gate_kernel, gate_bias = weights
        state = {"scale": scale, "proj.weight": proj_kernel.T, "proj.bias": proj_bias,
                 "gate.weight": gate_kernel.T, "gate.bias": gate_bias}
        return tf2torch.CustomLayer(GatedProjectionModule, {"features": 5, "units": config["units"]}, state)

    try:
        # Two sub-layers: the archive does not record their order; Keras (the class) tells it.
        result = tf2torch.convert(path, custom_objects={"GatedProjection": GatedProjection})
        if suffix == ".keras":
            with pytest.raises(tf2torch.ConversionError, match="several sub-layers.*--custom-code"):
                tf2torch.convert(path)
    finally:
        tf2torch.unregister_layer("GatedProjection")
    expected = model.get_layer("gated_proj").get_weights()
    assert [w.shape for w in received[0]] == [w.shape for w in expected]
    for got, want in zip(received[0], expected):
        np.testing.assert_array_equal(got, want)
    report = result.verify(batch_size=3, keras_model=model)
    assert report.ok, report.table()


@keras.saving.register_keras_serializable(package="tf2torch_tf_tests")
class MaskedScale(keras.layers.Layer):
    """Writes its (masked) variable in call() and then uses what it wrote."""

    def build(self, shape):
        self.scale = self.add_weight(shape=(shape[-1],), initializer="ones", name="scale")
        self.mask = np.arange(shape[-1]) % 2 == 0

    def call(self, x):
        self.scale.assign(self.scale * self.mask.astype("float32"))
        return x * self.scale + 1.0


def test_layer_assigning_its_variable_in_call_uses_the_written_value(tmp_path):
    model = _model(MaskedScale(name="masked"))
    model.get_layer("masked").set_weights([np.linspace(0.5, 2.0, 5).astype(np.float32)])
    path = _save(model, tmp_path)
    result = tf2torch.convert(path, custom_objects={"MaskedScale": MaskedScale})
    reference = keras.saving.load_model(path, custom_objects={"MaskedScale": MaskedScale})
    report = result.verify(batch_size=3, keras_model=reference)
    assert report.ok, report.table()


@keras.saving.register_keras_serializable(package="tf2torch_tf_tests")
class MaskedMean(keras.layers.Layer):
    """Consumes the Keras mask: the mean over unmasked time steps."""

    def call(self, x, mask=None):
        weights = tf.cast(mask, x.dtype)[:, :, None]
        return tf.reduce_sum(x * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="tf2torch_tf_tests")
class SinPassMask(keras.layers.Layer):
    """Supports masking without changing it: the mask reaches the next layer."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x):
        return tf.sin(x)


def test_keras_masks_into_and_out_of_traced_layers(tmp_path):
    tokens = keras.Input((9,), dtype="int32")
    x = keras.layers.Embedding(12, 6, mask_zero=True, name="embed")(tokens)
    x = SinPassMask(name="sine")(x)
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(x)  # uses the passed-through mask
    summary = MaskedMean(name="masked_mean")(x)  # takes the mask in call()
    model = keras.Model(tokens, keras.layers.Concatenate(name="join")([pooled, summary]))
    path = _save(model, tmp_path)
    objects = {"MaskedMean": MaskedMean, "SinPassMask": SinPassMask}
    result = tf2torch.convert(path, custom_objects=objects)
    ids = np.random.default_rng(0).integers(1, 12, (4, 9)).astype("int32")
    ids[1, 5:] = 0
    ids[2, 2:] = 0
    ids[3, 4] = 0
    report = result.verify([ids], keras_model=model)
    assert report.ok, report.table()


@keras.saving.register_keras_serializable(package="tf2torch_tf_tests")
class DropoutSin(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dropout = keras.layers.Dropout(0.4)

    def call(self, x, training=False):
        return self.dropout(tf.sin(x), training=training)


def test_layer_differing_in_training_gets_a_training_path(tmp_path):
    model = _model(DropoutSin(name="noisy"))
    result = tf2torch.convert(_save(model, tmp_path), custom_objects={"DropoutSin": DropoutSin})
    assert "if self.training:" in result.source_code and "traced in inference mode" not in result.source_code
    report = result.verify(batch_size=3, keras_model=model)
    assert report.ok, report.table()
    plain = tf2torch.convert(_save(_model(SinLayer(name="sine")), tmp_path), custom_objects={"SinLayer": SinLayer})
    assert "if self.training:" not in plain.source_code


@keras.saving.register_keras_serializable(package="tf2torch_tf_tests")
class SequenceProjection(keras.layers.Layer):
    """A Dense on a rank-3 input: TF lowers it to Tensordot with run-time shape arithmetic."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(4)

    def call(self, x):
        return self.dense(x)


def test_tracing_errors_name_the_layer_in_user_terms(tmp_path):
    inputs = keras.Input((6, 5))
    model = keras.Model(inputs, SequenceProjection(name="seq_proj")(inputs))
    path = _save(model, tmp_path)
    try:
        result = tf2torch.convert(path, custom_objects={"SequenceProjection": SequenceProjection})
    except tf2torch.ConversionError as exc:  # until the TF frontend computes run-time shapes
        text = str(exc)
        assert "layer 'seq_proj' (SequenceProjection), traced:" in text
        assert not any(kind in text for kind in ("ShapeVec", "ParamExpr", "VarRef")), text
        return
    report = result.verify(batch_size=3, keras_model=model)
    assert report.ok, report.table()


class ImageWave(keras.layers.Layer):
    """Channel-sensitive image math (the first channel is added to every channel)."""

    def call(self, x):
        return tf.sin(x) * 2.0 + x[:, :, :, :1]


def _image_model(*traced):
    inputs = keras.Input((9, 11, 3))
    x = keras.layers.Conv2D(4, 3, name="conv_in")(inputs)
    for layer in traced:
        x = layer(x)
    return keras.Model(inputs, [x, keras.layers.Conv2D(5, 3, strides=2, name="conv_out")(x)])


def test_rank_4_output_of_a_traced_layer_is_nchw_as_model_output_and_for_the_next_layer(tmp_path):
    model = _image_model(ImageWave(name="wave"))
    result = tf2torch.convert(_save(model, tmp_path), custom_objects={"ImageWave": ImageWave})
    report = result.verify(batch_size=3, keras_model=model)
    assert report.ok, report.table()
    images = np.random.default_rng(0).standard_normal((2, 9, 11, 3)).astype("float32")
    with torch.no_grad():
        wave, conv_out = result.module(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
    keras_wave, keras_conv_out = (np.asarray(t) for t in model(images))
    assert tuple(wave.shape) == (2, 4, 7, 9) and tuple(conv_out.shape) == (2, 5, 3, 4)  # NCHW, as documented
    np.testing.assert_allclose(wave.numpy().transpose(0, 2, 3, 1), keras_wave, rtol=0, atol=1e-5)
    np.testing.assert_allclose(conv_out.numpy().transpose(0, 2, 3, 1), keras_conv_out, rtol=0,
                               atol=1e-5 * np.abs(keras_conv_out).max())
    assert "wave  float32[N, 4, 7, 9]  (NCHW" in result.source_code


def test_traced_layers_in_a_row_share_the_keras_layout_without_permutes_between_them(tmp_path):
    model = _image_model(ImageWave(name="wave_a"), ImageWave(name="wave_b"))
    result = tf2torch.convert(_save(model, tmp_path), custom_objects={"ImageWave": ImageWave})
    assert _matches_keras(result, model)
    forward = result.source_code[result.source_code.index("    def forward(self, x"):]
    assert forward.count(".permute(") == 2  # into the Keras layout before wave_a, back after wave_b


def _matches_keras(result, model) -> bool:
    report = result.verify(batch_size=2, keras_model=model)
    assert report.outputs, "verification compared nothing"
    return report.ok


class PairScores(keras.layers.Layer):
    """Attention-like scores (batch, heads, steps, steps) from a sequence: not an image."""

    def call(self, x):
        heads = tf.stack([x, -x], axis=1)  # (batch, 2, steps, features)
        return tf.nn.softmax(tf.matmul(heads, heads, transpose_b=True), axis=-1)


def test_rank_4_output_of_a_traced_layer_on_sequences_keeps_the_keras_layout(tmp_path):
    inputs = keras.Input((None, 6))
    model = keras.Model(inputs, PairScores(name="scores")(keras.layers.Dense(4, name="proj")(inputs)))
    result = tf2torch.convert(_save(model, tmp_path), custom_objects={"PairScores": PairScores})
    sequences = np.random.default_rng(1).standard_normal((3, 5, 6)).astype("float32")
    with torch.no_grad():
        scores = result.module(torch.from_numpy(sequences))
    assert tuple(scores.shape) == (3, 2, 5, 5)  # (batch, heads, steps, steps), as Keras
    np.testing.assert_allclose(scores.numpy(), np.asarray(model(sequences)), rtol=0, atol=1e-6)
    assert ".permute(" not in result.source_code
