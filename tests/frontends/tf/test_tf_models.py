"""Acceptance: whole TF models through the op-level frontend, against TensorFlow.

Each converts, matches TF within 1e-5 x max|output| (at two batch sizes: the batch stays
dynamic), has as many trainable parameters as TF has trainable variables, and trains."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pytest
from tf_frontend_helpers import (
    assert_matches,
    forward_source,
    tf_trainable_count,
    trainable_count,
    training_step_changes,
)

tf = pytest.importorskip("tensorflow")

import tf2torch


def _var(rng, *shape, name, trainable=True):
    return tf.Variable(rng.standard_normal(shape).astype(np.float32) * 0.5, name=name, trainable=trainable)


class Dense(tf.Module):
    def __init__(self, rng, n_in, n_out, name):
        super().__init__(name=name)
        with self.name_scope:
            self.w = _var(rng, n_in, n_out, name="w")
            self.b = _var(rng, n_out, name="b")

    def __call__(self, x):
        return tf.matmul(x, self.w) + self.b


class MLP(tf.Module):
    def __init__(self):
        super().__init__(name="mlp")
        rng = np.random.default_rng(0)
        self.l1 = Dense(rng, 7, 13, "hidden")
        self.l2 = Dense(rng, 13, 5, "out")
        self.scale = _var(rng, 5, name="scale", trainable=False)

    @tf.function(input_signature=[tf.TensorSpec((None, 7), tf.float32)])
    def __call__(self, x):
        return tf.nn.softmax(self.l2(tf.nn.gelu(self.l1(x))) * self.scale)


class ConvNet(tf.Module):
    def __init__(self):
        super().__init__(name="convnet")
        rng = np.random.default_rng(1)
        self.k1 = _var(rng, 3, 3, 3, 8, name="conv1/kernel")
        self.b1 = _var(rng, 8, name="conv1/bias")
        self.dk = _var(rng, 3, 3, 8, 1, name="dw/depthwise_kernel")
        self.k2 = _var(rng, 1, 1, 8, 6, name="conv2/kernel")
        self.w = _var(rng, 6, 4, name="fc/kernel")
        self.b = _var(rng, 4, name="fc/bias")

    @tf.function(input_signature=[tf.TensorSpec((None, 15, 13, 3), tf.float32)])
    def __call__(self, x):
        x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, self.k1, 2, "SAME"), self.b1))
        x = tf.nn.max_pool2d(x, 2, 1, "VALID")
        x = tf.nn.relu6(tf.nn.depthwise_conv2d(x, self.dk, [1, 1, 1, 1], "SAME"))
        x = tf.nn.conv2d(x, self.k2, 1, "VALID")
        x = tf.reduce_mean(x, axis=[1, 2])
        return tf.matmul(x, self.w) + self.b


@pytest.mark.parametrize("kind", ["mlp", "convnet"])
def test_tf_module_saved_model(kind, tmp_path):
    module = MLP() if kind == "mlp" else ConvNet()
    tf.saved_model.save(module, str(tmp_path / kind))
    result = tf2torch.convert(str(tmp_path / kind))
    assert_matches(result, batch_sizes=(3, 5))
    assert trainable_count(result.module) == tf_trainable_count(module.trainable_variables)
    training_step_changes(result)
    forward = forward_source(result.source_code)
    assert "permute" not in forward
    if kind == "convnet":
        assert "nn.Conv2d(3, 8, kernel_size=3, stride=2" in result.source_code
        assert "nn.Linear(6, 4)" in result.source_code
    else:
        assert "nn.Linear(7, 13)" in result.source_code  # MatMul + Add folded into one Linear


def _subclassed_model(keras):
    @keras.saving.register_keras_serializable(package="tf2torch_tests")
    class Scale(keras.layers.Layer):
        def build(self, shape):
            self.alpha = self.add_weight(shape=(shape[-1],), initializer="ones", name="alpha")

        def call(self, x):
            return x * tf.sigmoid(self.alpha) + tf.sin(x)

    class ResidualNet(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(6, 3, padding="same")
            self.bn = keras.layers.BatchNormalization(epsilon=0.01)
            self.conv2 = keras.layers.Conv2D(6, 3, padding="same", use_bias=False)
            self.scale = Scale()
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.head = keras.layers.Dense(3)

        def call(self, x):
            y = keras.activations.relu(self.bn(self.conv(x)))
            y = y + self.conv2(y)  # residual
            return self.head(self.pool(self.scale(y)))

    return ResidualNet()


def test_subclassed_keras_model_saved_model(tmp_path, keras):
    from conftest import perturb_weights

    model = _subclassed_model(keras)
    model(np.zeros((1, 9, 11, 4), np.float32))
    perturb_weights(model)
    path = str(tmp_path / "subclassed")
    model.export(path, verbose=False)
    result = tf2torch.convert(path)
    x = np.random.default_rng(2).standard_normal((3, 9, 11, 4)).astype(np.float32)
    assert_matches(result, inputs=[x])
    assert_matches(result, batch_sizes=(2,))
    expected = model(x, training=False).numpy()
    actual = result.module(tf2torch_input(x)).detach().numpy()
    assert np.max(np.abs(expected - actual)) <= 1e-5 * np.max(np.abs(expected))
    assert trainable_count(result.module) == tf_trainable_count(model.trainable_weights)
    training_step_changes(result)
    assert "BatchNorm2d(6" in result.source_code  # Keras 3's written-out batch norm, folded back
    assert "permute" not in forward_source(result.source_code)


def tf2torch_input(x):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def test_frozen_graph_pb(tmp_path):
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    rng = np.random.default_rng(3)
    kernel = _var(rng, 3, 3, 2, 5, name="conv/kernel")
    bias = _var(rng, 5, name="conv/bias")
    w = _var(rng, 5, 3, name="logits/kernel")
    trainable = 3 * 3 * 2 * 5 + 5 + 5 * 3

    @tf.function(input_signature=[tf.TensorSpec((None, 10, 9, 2), tf.float32, name="image")])
    def net(image):
        x = tf.nn.relu(tf.nn.conv2d(image, kernel, 1, "SAME") + bias)
        x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
        return tf.nn.softmax(tf.matmul(tf.reduce_max(x, axis=[1, 2]), w), name="probs")

    frozen = convert_variables_to_constants_v2(net.get_concrete_function())
    path = tmp_path / "frozen.pb"
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    result = tf2torch.convert(str(path))
    assert_matches(result, batch_sizes=(3, 4))
    # freezing turned the variables into constants: the weight constants train again
    assert trainable_count(result.module) == trainable
    training_step_changes(result)
    assert "permute" not in forward_source(result.source_code)


def test_frozen_graph_explicit_outputs(tmp_path):
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    w = tf.Variable(np.random.default_rng(4).standard_normal((4, 3)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32, name="features")])
    def net(features):
        hidden = tf.tanh(tf.matmul(features, w), name="hidden")
        return tf.identity(hidden * 2.0, name="doubled")

    frozen = convert_variables_to_constants_v2(net.get_concrete_function())
    path = tmp_path / "two_heads.pb"
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    result = tf2torch.convert(str(path), inputs=["features"], outputs=["hidden"])
    assert result.graph.output_names == ["hidden"]
    assert_matches(result, batch_sizes=(3,))


def test_signature_choice_and_missing_signature(tmp_path):
    module = MLP()
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"predict": module.__call__})
    result = tf2torch.convert(str(tmp_path / "m"), signature="predict")
    assert_matches(result)
    with pytest.raises(tf2torch.ConversionError, match="no signature 'serving_default'.*predict"):
        tf2torch.convert(str(tmp_path / "m"))


def test_concrete_function_with_captured_variables():
    rng = np.random.default_rng(5)
    v = _var(rng, 6, 6, name="mix")
    frozen = _var(rng, 6, name="offset", trainable=False)

    @tf.function
    def fn(x):
        return tf.nn.tanh(tf.einsum("bi,ij->bj", x, v)) - frozen

    concrete = fn.get_concrete_function(tf.TensorSpec((None, 6), tf.float32))
    result = tf2torch.convert(concrete)
    assert_matches(result, batch_sizes=(3, 1))
    assert trainable_count(result.module) == 36
    training_step_changes(result)


@pytest.mark.slow
def test_resnet50_saved_model(tmp_path, keras):
    from conftest import perturb_weights

    model = keras.applications.ResNet50(
        weights=None, input_shape=(64, 64, 3), classes=10, classifier_activation=None)
    perturb_weights(model)
    path = str(tmp_path / "resnet50")
    model.export(path, verbose=False)
    result = tf2torch.convert(path)
    assert_matches(result, batch_sizes=(2,))
    assert trainable_count(result.module) == tf_trainable_count(model.trainable_weights)
    forward = forward_source(result.source_code)
    assert "permute" not in forward and "transpose" not in forward
    assert result.source_code.count("nn.Conv2d(") == 53
    assert result.source_code.count("BatchNorm2d(") >= 53  # Keras 3's written-out BN folded back
    training_step_changes(result, batch_size=2)


def test_training_mode_verification_is_refused(tmp_path):
    module = MLP()
    tf.saved_model.save(module, str(tmp_path / "m"))
    result = tf2torch.convert(str(tmp_path / "m"))
    with pytest.raises(tf2torch.ConversionError, match="inference graph"):
        result.verify(training=True)


def test_keras_saved_model_either_frontend(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    inputs = tf_keras.Input((6, 5, 2))
    x = tf_keras.layers.Conv2D(3, 3, padding="same", activation="relu")(inputs)
    x = tf_keras.layers.BatchNormalization()(x)
    outputs = tf_keras.layers.Dense(4)(tf_keras.layers.Flatten()(x))
    model = tf_keras.Model(inputs, outputs)
    path = str(tmp_path / "k2")
    model.save(path, save_format="tf")
    via_tf = tf2torch.convert(path)  # default: the op-level frontend (FusedBatchNormV3, BiasAdd folded)
    assert_matches(via_tf, batch_sizes=(3,))
    assert "BatchNorm2d(3" in via_tf.source_code and "permute" not in forward_source(via_tf.source_code)
    via_keras = tf2torch.convert(path, frontend="keras")
    report = via_keras.verify(batch_size=3, keras_model=model)
    assert report.ok, report.table()
    with pytest.raises(tf2torch.ConversionError, match="no Keras metadata"):
        tf2torch.convert(str(tmp_path / "plain"), frontend="keras") if _save_plain(tmp_path / "plain") else None


def _save_plain(path):
    tf.saved_model.save(MLP(), str(path))
    return True


FOLDED_KERAS_LAYERS = {
    "layer_norm": ((4, 6), lambda k: k.layers.LayerNormalization(epsilon=0.01), "nn.LayerNorm(6, eps=0.01)"),
    "batch_norm": ((5, 7, 3), lambda k: k.layers.BatchNormalization(epsilon=0.02), "BatchNorm2d(3, eps=0.02"),
    "dense_gelu": ((9,), lambda k: k.layers.Dense(4, activation="gelu"), "F.gelu("),
    "conv_bias": ((6, 7, 2), lambda k: k.layers.Conv2D(3, 2, strides=2, padding="same"), "Conv2d(2, 3, kernel_size=2"),
}


@pytest.mark.parametrize("case", sorted(FOLDED_KERAS_LAYERS))
def test_written_out_keras_layers_fold_back(case, keras):
    from conftest import perturb_weights

    shape, make, expected = FOLDED_KERAS_LAYERS[case]
    inputs = keras.Input(shape)
    model = keras.Model(inputs, make(keras)(inputs))
    perturb_weights(model)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(tf.TensorSpec((None, *shape)))
    result = tf2torch.convert(fn)
    assert_matches(result, batch_sizes=(3,))
    assert expected in result.source_code
    assert trainable_count(result.module) == tf_trainable_count(model.trainable_weights)
    assert "permute" not in forward_source(result.source_code)
