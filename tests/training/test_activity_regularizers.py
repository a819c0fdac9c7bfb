"""Activity regularizers (`activity_regularizer=` on a layer): Keras adds
`regularizer(layer output) / batch size` to the loss, on the output *after* the layer's
activation, once per call. Keras (TF backend) vs training_setup() from the same weights and
batches: same loss curve (the reported loss includes the activity terms), weights within
1e-4; the same for a tf.keras 2 .h5 source and for the generated train.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import torch
from training_helpers import RTOL, batches, keras_layout_to_torch, run_parity

import tf2torch
from tf2torch.training.compile_config import UnsupportedTraining

STEPS = 15
BATCH = 5
IMAGE = (9, 11, 3)  # odd spatial size


def cnn(k, conv_regularizer, dense_regularizer, probs_regularizer=None):
    """Conv2D (strided, 'same', relu) -> Flatten -> Dense (tanh) -> Dense (softmax)."""
    inputs = k.Input(IMAGE, name="image")
    x = k.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv",
                        activity_regularizer=conv_regularizer)(inputs)
    x = k.layers.Flatten(name="flatten")(x)
    x = k.layers.Dense(7, activation="tanh", name="hidden", activity_regularizer=dense_regularizer)(x)
    outputs = k.layers.Dense(3, activation="softmax", name="probs", activity_regularizer=probs_regularizer)(x)
    return k.Model(inputs, outputs, name="activity_cnn")


def shared_mlp(k, regularizer):
    """One Dense called twice: one activity term per call."""
    inputs = k.Input((6,), name="features")
    shared = k.layers.Dense(6, activation="sigmoid", name="shared", activity_regularizer=regularizer)
    x = shared(shared(inputs))
    outputs = k.layers.Dense(3, activation="softmax", name="probs")(x)
    return k.Model(inputs, outputs, name="shared_mlp")


def layer_zoo(case):
    """Other layer kinds: the regularized output is after a permute, a crop, an RNN's tuple, a
    second module (separable), or changed in place by the next layer's statement."""
    L, reg = keras.layers, lambda: keras.regularizers.L1L2(0.01, 0.02)
    if case == "dense_on_feature_map_then_relu_layer":
        inputs = keras.Input((5, 7, 3))
        x = L.Conv2D(4, 3, name="conv", activity_regularizer=reg())(inputs)
        x = L.ReLU(name="relu")(x)  # may be an in-place relu in forward(), right after self.conv
        x = L.Dense(5, activation="relu", name="dense4d", activity_regularizer=reg())(x)
        x = L.GlobalAveragePooling2D(name="gap")(x)
        shape = (5, 7, 3)
    elif case == "lstm_gru":
        inputs = keras.Input((6, 4))
        x = L.LSTM(5, name="lstm", return_sequences=True, activity_regularizer=reg())(inputs)
        x = L.GRU(4, name="gru", activity_regularizer=reg())(x)
        shape = (6, 4)
    else:  # "separable_bn_transpose_depthwise"
        inputs = keras.Input((7, 9, 3))
        x = L.SeparableConv2D(4, 3, name="sep", activation="elu", activity_regularizer=reg())(inputs)
        x = L.BatchNormalization(name="bn", activity_regularizer=reg())(x)
        x = L.Conv2DTranspose(3, 3, strides=2, padding="same", name="tconv", activation="sigmoid",
                              activity_regularizer=reg())(x)
        x = L.DepthwiseConv2D(3, name="dw", activity_regularizer=reg())(x)
        x = L.GlobalAveragePooling2D(name="gap")(x)
        shape = (7, 9, 3)
    outputs = L.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=case), shape


CASES = {
    "conv_l1_dense_l2": lambda: (cnn(keras, keras.regularizers.L1(0.01), keras.regularizers.L2(0.05)), IMAGE),
    "conv_l1l2_dense_orthogonal_probs_l1": lambda: (
        cnn(keras, keras.regularizers.L1L2(0.003, 0.02), keras.regularizers.OrthogonalRegularizer(0.2, mode="rows"),
            keras.regularizers.L1(0.05)), IMAGE),
    "shared_dense_l2": lambda: (shared_mlp(keras, keras.regularizers.L2(0.1)), (6,)),
    "dense_on_feature_map_then_relu_layer": lambda: layer_zoo("dense_on_feature_map_then_relu_layer"),
    "lstm_gru": lambda: layer_zoo("lstm_gru"),
    "separable_bn_transpose_depthwise": lambda: layer_zoo("separable_bn_transpose_depthwise"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_activity_regularizer_parity(case, tmp_path):
    keras.utils.set_random_seed(6)
    model, shape = CASES[case]()
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.6), loss="sparse_categorical_crossentropy")
    parity = run_parity(model, batches(shape, 3, STEPS, BATCH), tmp_path)
    parity.check()


def test_activity_terms_are_in_the_reported_loss(tmp_path):
    """Keras' loss with and without the regularizers differ: the parity above is not vacuous,
    and evaluation (test_step, eval mode) includes the terms too, as Keras' evaluate does."""
    keras.utils.set_random_seed(7)
    model = cnn(keras, keras.regularizers.L1(0.05), keras.regularizers.L2(0.5))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "m.keras")
    result = tf2torch.convert(tmp_path / "m.keras")
    training = result.training_setup()
    (x, y), = batches(IMAGE, 3, 1, BATCH, seed=3)
    keras_eval = float(model.test_on_batch(x, y))
    plain = float(keras.losses.sparse_categorical_crossentropy(y, model(x)).numpy().mean())
    assert keras_eval - plain > 1e-3
    ours = float(training.test_step([keras_layout_to_torch(x, result)], torch.from_numpy(y)))
    np.testing.assert_allclose(ours, keras_eval, rtol=RTOL)
    # A plain call of the module afterwards leaves nothing behind for the next step.
    result.module(keras_layout_to_torch(x, result))
    assert training.activity.pop() is not None and training.activity.pop() is None


H5_CASES = {
    "conv_l1_dense_l2": lambda k: cnn(k, k.regularizers.L1(0.01), k.regularizers.L2(0.05)),
    "conv_l2_probs_l1l2": lambda k: cnn(k, k.regularizers.L2(0.02), None, k.regularizers.L1L2(0.01, 0.03)),
}


@pytest.mark.parametrize("case", list(H5_CASES), ids=list(H5_CASES))
def test_tf_keras_h5_activity_regularizer_parity(case, tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(8)
    model = H5_CASES[case](tf_keras)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    parity = run_parity(model, batches(IMAGE, 3, STEPS, BATCH), tmp_path, suffix=".h5")
    parity.check()


def test_train_py_with_activity_regularizers_matches_fit(tmp_path):
    """The generated train.py (its own copy of the hook functions) trains as Keras' fit()."""
    keras.utils.set_random_seed(9)
    model = cnn(keras, keras.regularizers.L1(0.01), keras.regularizers.L2(0.05))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "m.keras")
    out = tf2torch.convert(tmp_path / "m.keras").save(tmp_path / "out")
    assert "hidden_keras_outputs" in (out / "train.py").read_text()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, *IMAGE)).astype(np.float32)
    y = rng.integers(0, 3, size=(12,)).astype(np.int64)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    command = [sys.executable, str(out / "train.py"), "--data", str(tmp_path / "data.npz"), "--epochs", "2",
               "--batch-size", "4", "--no-shuffle", "--quiet", "--checkpoint-dir", str(tmp_path / "ckpt")]
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    ours = json.loads((tmp_path / "ckpt" / "history.json").read_text())
    np.testing.assert_allclose(ours["loss"], history["loss"], rtol=RTOL)


def test_orthogonal_activity_on_a_conv_output_is_refused(tmp_path):
    """The conv output is NCHW in torch: an axis-dependent regularizer would see other rows."""
    inputs = keras.Input((5, 5, 2))
    x = keras.layers.Conv2D(3, 3, name="conv", activity_regularizer=keras.regularizers.OrthogonalRegularizer())(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, x)
    model.compile(optimizer="sgd", loss="mse")
    model.save(tmp_path / "m.keras")
    result = tf2torch.convert(tmp_path / "m.keras")
    with pytest.raises(UnsupportedTraining, match="layer 'conv': activity regularizer Orthogonal depends on the axes"):
        result.training_setup()


def test_activity_on_a_layer_without_its_own_module_is_refused(tmp_path):
    """An Activation layer is a statement in forward(), not a module: no hook can see it."""
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="dense")(inputs)
    x = keras.layers.Activation("relu", name="act", activity_regularizer="l2")(x)
    model = keras.Model(inputs, x)
    model.compile(optimizer="sgd", loss="mse")
    model.save(tmp_path / "m.keras")
    result = tf2torch.convert(tmp_path / "m.keras")
    with pytest.raises(UnsupportedTraining, match="layer 'act': activity_regularizer on a layer without its own torch"):
        result.training_setup()
    with pytest.warns(UserWarning, match="train.py not written"):
        written = result.save(tmp_path / "out")
    assert not (written / "train.py").exists()


def test_hook_survives_in_place_changes_of_the_module_result():
    """forward() may change the module's result in place after the hook ran (an in-place relu
    of the next statement): the recorded loss is the value at the hook, and backward works."""
    from tf2torch.training.regularizers import L1L2, ActivityRegularization

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 4)

        def forward(self, x):
            x = self.lin(x)
            return torch.nn.functional.relu(x, inplace=True)

    torch.manual_seed(0)
    net = Net()
    activity = ActivityRegularization(net, [("lin", L1L2(l1=0.1), None)])
    x = torch.randn(5, 3)
    out = net(x)
    loss = activity.pop()
    expected = 0.1 * torch.sum(torch.abs(torch.nn.functional.linear(x, net.lin.weight, net.lin.bias))) / 5
    torch.testing.assert_close(loss, expected.detach())
    (out.sum() + loss).backward()
    assert net.lin.weight.grad is not None
    activity.remove()
    net(x)
    assert activity.pop() is None


def test_activity_on_a_wrapped_layer_is_refused(tmp_path):
    """TimeDistributed / Bidirectional call their inner layer in their own way: refused."""
    inputs = keras.Input((4, 3))
    x = keras.layers.TimeDistributed(keras.layers.Dense(2, activity_regularizer="l1"), name="td")(inputs)
    model = keras.Model(inputs, x)
    model.compile(optimizer="sgd", loss="mse")
    model.save(tmp_path / "m.keras")
    result = tf2torch.convert(tmp_path / "m.keras")
    with pytest.raises(UnsupportedTraining, match="layer 'td': an activity_regularizer on the layer it wraps"):
        result.training_setup()


def activity_regularization_layer(k):
    """The ActivityRegularization layer (an identity whose config holds l1 / l2)."""
    inputs = k.Input(IMAGE, name="image")
    x = k.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = k.layers.ActivityRegularization(l1=0.01, l2=0.03, name="penalty")(x)
    x = k.layers.Flatten(name="flatten")(x)
    outputs = k.layers.Dense(3, activation="softmax", name="probs")(x)
    return k.Model(inputs, outputs, name="activity_layer")


@pytest.mark.parametrize("source", ["keras3", "tf_keras_h5"])
def test_activity_regularization_layer_parity(source, tmp_path):
    k = keras if source == "keras3" else pytest.importorskip("tf_keras")
    k.utils.set_random_seed(9)
    model = activity_regularization_layer(k)
    model.compile(optimizer=k.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    suffix = ".keras" if source == "keras3" else ".h5"
    parity = run_parity(model, batches(IMAGE, 3, STEPS, BATCH), tmp_path, suffix=suffix)
    parity.check()
