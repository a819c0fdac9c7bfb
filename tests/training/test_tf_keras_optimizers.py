"""tf.keras 2.x (tf_keras) optimizers whose update differs from Keras 3's: Nadam (its momentum
product under tf.function) and the legacy OptimizerV2 ones (tf.keras.optimizers.legacy.*,
every optimizer saved by TF <= 2.10). Each is compared with tf_keras' own training on CPU."""

from __future__ import annotations

import numpy as np
import pytest
from training_helpers import RTOL, batches, compare_weights, keras_steps, run_parity, torch_steps

import tf2torch
from tf2torch.training.compile_config import UnsupportedTraining, parse_optimizer

tf_keras = pytest.importorskip("tf_keras")


def mlp(optimizer, metrics=("accuracy",)) -> tf_keras.Model:
    tf_keras.utils.set_random_seed(2)
    inputs = tf_keras.Input((6,), name="features")
    x = tf_keras.layers.Dense(9, activation="relu", name="hidden", kernel_regularizer=tf_keras.regularizers.L2(0.02),
                              kernel_constraint=tf_keras.constraints.MaxNorm(0.7))(inputs)
    outputs = tf_keras.layers.Dense(4, activation="softmax", name="probs")(x)
    model = tf_keras.Model(inputs, outputs)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=list(metrics))
    return model


def cnn_bn(optimizer) -> tf_keras.Model:
    tf_keras.utils.set_random_seed(5)
    inputs = tf_keras.Input((7, 9, 2), name="image")
    # BatchNormalization after the activation: right before it, the conv bias would get a zero
    # gradient (up to rounding), which Adam-like optimizers turn into full-size random steps.
    x = tf_keras.layers.Conv2D(5, 3, activation="relu", name="conv")(inputs)
    x = tf_keras.layers.BatchNormalization(momentum=0.8, epsilon=0.01, name="bn")(x)
    x = tf_keras.layers.Flatten(name="flatten")(x)
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = tf_keras.Model(inputs, outputs)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


EXPECTED_NADAM = "KerasNadamTF2"
MODELS = {"mlp": (mlp, (6,), 4), "cnn_bn": (cnn_bn, (7, 9, 2), 3)}


def nadam_product(model) -> float:
    return float(model.optimizer._u_product.numpy())


# -- tf.keras 2 Nadam -----------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["mlp", "cnn_bn"])
def test_tf_keras_nadam_parity(arch, tmp_path):
    """25 steps from a freshly compiled model: the torch optimizer reproduces tf.keras' momentum
    product (read from the live optimizer) and the weights."""
    build, shape, classes = MODELS[arch]
    model = build(tf_keras.optimizers.Nadam(0.01, beta_1=0.85))
    data = batches(shape, classes, 25, 5, seed=1)
    path = tmp_path / "start.h5"
    model.save(path)
    result = tf2torch.convert(path)
    training = result.training_setup()
    assert type(training.optimizer).__name__ == EXPECTED_NADAM
    torch_losses = torch_steps(result, training, data[:3])
    keras_losses = keras_steps(model, data[:3])
    # Early on the product is still far from 0: it is what makes tf.keras differ from Keras 3.
    np.testing.assert_allclose(training.optimizer.param_groups[0]["u_product"], nadam_product(model), rtol=1e-5)
    torch_losses += torch_steps(result, training, data[3:])
    keras_losses += keras_steps(model, data[3:])
    np.testing.assert_allclose(training.optimizer.param_groups[0]["u_product"], nadam_product(model), rtol=1e-4)
    np.testing.assert_allclose(torch_losses, keras_losses, rtol=RTOL)
    errors = compare_weights(model, result.module, tmp_path, suffix=".h5")
    assert max(errors.values()) < RTOL, errors


def test_tf_keras_nadam_fit_parity(tmp_path):
    """model.fit() over 23 samples in batches of 5 (the last one partial) for two epochs."""
    model = mlp(tf_keras.optimizers.Nadam(0.02))
    rng = np.random.default_rng(4)
    x = rng.normal(size=(23, 6)).astype(np.float32)
    y = rng.integers(0, 4, size=23).astype(np.int64)
    path = tmp_path / "start.h5"
    model.save(path)
    result = tf2torch.convert(path)
    training = result.training_setup()
    data = [(x[i : i + 5], y[i : i + 5]) for _ in range(2) for i in range(0, 23, 5)]
    torch_steps(result, training, data)
    model.fit(x, y, batch_size=5, epochs=2, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations) == training.optimizer.param_groups[0]["iterations"] == 10
    np.testing.assert_allclose(training.optimizer.param_groups[0]["u_product"], nadam_product(model), rtol=1e-4)
    errors = compare_weights(model, result.module, tmp_path, suffix=".h5")
    assert max(errors.values()) < RTOL, errors


@pytest.mark.parametrize("arch", ["mlp", "cnn_bn"])
def test_tf_keras_nadam_resume_from_h5(arch, tmp_path):
    """10 steps in tf.keras, save, then 15 more: torch from the .h5's optimizer state against
    tf_keras.models.load_model() of the same file (which restarts the momentum product at 1:
    tf.keras does not save it)."""
    build, shape, classes = MODELS[arch]
    model = build(tf_keras.optimizers.Nadam(0.01))
    data = batches(shape, classes, 25, 5, seed=2)
    keras_steps(model, data[:10])
    path = tmp_path / "after10.h5"
    model.save(path)
    result = tf2torch.convert(path)
    with pytest.warns(UserWarning, match=r"does not store Nadam's momentum product .*after 10 steps"):
        training = result.training_setup()
    group = training.optimizer.param_groups[0]
    assert group["iterations"] == 10 and group["u_product"] == 1.0
    reloaded = tf_keras.models.load_model(path)
    torch_losses = torch_steps(result, training, data[10:])
    keras_losses = keras_steps(reloaded, data[10:])
    np.testing.assert_allclose(group["u_product"], nadam_product(reloaded), rtol=1e-4)
    np.testing.assert_allclose(torch_losses, keras_losses, rtol=RTOL)
    errors = compare_weights(reloaded, result.module, tmp_path, suffix=".h5")
    assert max(errors.values()) < RTOL, errors


def test_tf_keras_nadam_parameter_order_is_checked(tmp_path, monkeypatch):
    """The update depends on each variable's position: a torch parameter order that is not
    Keras' model.trainable_variables order is refused (here: Keras' layer order reversed)."""
    from tf2torch.training import state_transfer

    model = mlp(tf_keras.optimizers.Nadam(0.01))
    model.save(tmp_path / "m.h5")
    result = tf2torch.convert(tmp_path / "m.h5")
    real = state_transfer.keras_layer_order
    monkeypatch.setattr(state_transfer, "keras_layer_order", lambda config: list(reversed(real(config))))
    with pytest.raises(UnsupportedTraining, match="Nadam's update depends on each variable's position"):
        result.training_setup()


@pytest.fixture(scope="module")
def nadam_train_py(tmp_path_factory):
    """(tf.keras model, its converted output dir, data.npz, the checkpoint dir of one train.py run)."""
    from test_train_script import BATCH, EPOCHS, SAMPLES, run, train_cmd

    root = tmp_path_factory.mktemp("nadam_train_py")
    # "accuracy" would be saved as categorical_accuracy by an untrained tf.keras model (it picks
    # the sparse variant only when it first sees the labels): name the metric explicitly.
    model = mlp(tf_keras.optimizers.Nadam(0.02, beta_1=0.8), metrics=["sparse_categorical_accuracy"])
    model.save(root / "m.h5")
    out = tf2torch.convert(root / "m.h5").save(root / "out")
    rng = np.random.default_rng(7)
    np.savez(root / "data.npz", x=rng.normal(size=(SAMPLES, 6)).astype(np.float32),
             y=rng.integers(0, 4, size=(SAMPLES,)).astype(np.int64))
    run(train_cmd(out, root / "data.npz", str(root / "ckpt"), "--quiet"), cwd=root)
    return model, out, root / "data.npz", root / "ckpt", (BATCH, EPOCHS)


def test_tf_keras_nadam_train_py_matches_fit(nadam_train_py, tmp_path):
    """train.py (which says why it has a tf.keras 2 Nadam) == tf_keras' model.fit()."""
    import json

    from safetensors.numpy import load_file

    model, out, data, ckpt, (batch, epochs) = nadam_train_py
    script = (out / "train.py").read_text()
    assert "class KerasNadamTF2(KerasNadam):" in script and "tf.keras 2.x Nadam" in script
    assert "optimizer = KerasNadamTF2(" in script
    with np.load(data) as arrays:
        history = model.fit(arrays["x"], arrays["y"], batch_size=batch, epochs=epochs, validation_split=0.2,
                            shuffle=False, verbose=0).history
    ours = json.loads((ckpt / "history.json").read_text())
    for key in ("loss", "sparse_categorical_accuracy", "val_loss", "val_sparse_categorical_accuracy"):
        np.testing.assert_allclose(ours[key], history[key], rtol=RTOL, err_msg=key)
    model.save(tmp_path / "fitted.h5")
    expected = tf2torch.convert(tmp_path / "fitted.h5").state_dict
    final = load_file(str(ckpt / "final.safetensors"))
    for name, value in expected.items():
        np.testing.assert_allclose(final[name], value, rtol=RTOL, atol=1e-6, err_msg=name)


def test_tf_keras_nadam_train_py_resume(nadam_train_py, tmp_path):
    """The momentum product and its counter travel in train.py's checkpoints."""
    import json
    import shutil

    from safetensors.numpy import load_file
    from test_train_script import run, train_cmd

    _, out, data, ckpt, _ = nadam_train_py
    parts = tmp_path / "parts"
    shutil.copytree(ckpt / "epoch_1", parts / "last")
    history = json.loads((ckpt / "history.json").read_text())
    (parts / "history.json").write_text(json.dumps({k: v[:1] for k, v in history.items()}))
    run(train_cmd(out, data, str(parts), "--quiet", "--resume"), cwd=tmp_path)
    full = load_file(str(ckpt / "final.safetensors"))
    resumed = load_file(str(parts / "final.safetensors"))
    for name in full:
        np.testing.assert_allclose(resumed[name], full[name], rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("optimizer", [
    pytest.param(lambda k: k.optimizers.Nadam(0.01), id="nadam"),
    pytest.param(lambda k: k.optimizers.legacy.Adagrad(0.05, epsilon=1e-2), id="legacy_adagrad"),
])
def test_tf_keras_dot_keras_file(optimizer, tmp_path):
    """tf.keras 2 writes .keras files too: its optimizer configs are recognised there as well."""
    model = mlp(optimizer(tf_keras))
    parity = run_parity(model, batches((6,), 4, 15, 5, seed=8), tmp_path, suffix=".keras")
    parity.check()


def test_tf_keras_dot_keras_nadam_state_is_a_clear_error(tmp_path):
    model = mlp(tf_keras.optimizers.Nadam(0.01))
    keras_steps(model, batches((6,), 4, 3, 5))
    model.save(tmp_path / "m.keras")
    result = tf2torch.convert(tmp_path / "m.keras")
    with pytest.raises(UnsupportedTraining, match="written by tf.keras 2 .*load_optimizer_state=False") as error:
        result.training_setup()
    assert ".h5" not in str(error.value)  # tf.keras' .h5 does not hold Nadam's whole state either
    assert result.training_setup(load_optimizer_state=False).optimizer.param_groups[0]["iterations"] == 0


# -- legacy (OptimizerV2) optimizers ---------------------------------------------------------

LEGACY = {
    "adagrad": lambda k: k.optimizers.legacy.Adagrad(0.05, initial_accumulator_value=0.2, epsilon=1e-2),
    "adam_amsgrad": lambda k: k.optimizers.legacy.Adam(0.01, beta_1=0.8, epsilon=1e-4, amsgrad=True),
    "sgd": lambda k: k.optimizers.legacy.SGD(0.05),
    "sgd_nesterov_clipnorm": lambda k: k.optimizers.legacy.SGD(0.05, momentum=0.7, nesterov=True, clipnorm=0.5),
    "rmsprop": lambda k: k.optimizers.legacy.RMSprop(0.01, rho=0.8, epsilon=1e-3),
    "rmsprop_centered": lambda k: k.optimizers.legacy.RMSprop(0.005, centered=True, epsilon=1e-3),
    "adamax": lambda k: k.optimizers.legacy.Adamax(0.02, beta_2=0.99, epsilon=1e-3),
    "adadelta": lambda k: k.optimizers.legacy.Adadelta(1.0, rho=0.9, epsilon=1e-4),
    "ftrl_l2_shrinkage_beta": lambda k: k.optimizers.legacy.Ftrl(
        0.1, l2_regularization_strength=0.01, l2_shrinkage_regularization_strength=0.02, beta=0.1),
    "nadam": lambda k: k.optimizers.legacy.Nadam(0.01, beta_1=0.85),
    "nadam_schedule_decay_clipvalue": lambda k: k.optimizers.legacy.Nadam(0.01, schedule_decay=0.1, clipvalue=0.05),
}


@pytest.mark.parametrize("optimizer", list(LEGACY))
def test_tf_keras_legacy_optimizer_parity(optimizer, tmp_path):
    model = mlp(LEGACY[optimizer](tf_keras))
    parity = run_parity(model, batches((6,), 4, 15, 5, seed=3), tmp_path, suffix=".h5")
    parity.check()


@pytest.mark.parametrize("optimizer", [
    pytest.param(lambda k: k.optimizers.legacy.Adagrad(0.05, epsilon=1e-2), id="adagrad"),
    pytest.param(lambda k: k.optimizers.legacy.Nadam(0.01, schedule_decay=0.1), id="nadam"),
    pytest.param(lambda k: k.optimizers.legacy.Adamax(0.02), id="adamax", marks=pytest.mark.slow),
    pytest.param(lambda k: k.optimizers.legacy.Adadelta(1.0), id="adadelta", marks=pytest.mark.slow),
    pytest.param(lambda k: k.optimizers.legacy.Ftrl(0.1, l1_regularization_strength=0.01), id="ftrl",
                 marks=pytest.mark.slow),
])
def test_tf_keras_legacy_resume_from_h5(optimizer, tmp_path):
    """10 steps in tf.keras, save .h5 (slots, and legacy Nadam's momentum_cache), 10 more in torch."""
    model = cnn_bn(optimizer(tf_keras))
    data = batches((7, 9, 2), 3, 20, 5, seed=6)
    keras_steps(model, data[:10])
    path = tmp_path / "after10.h5"
    model.save(path)
    result = tf2torch.convert(path)
    training = result.training_setup()
    group = training.optimizer.param_groups[0]
    assert group["iterations"] == 10
    if "momentum_cache" in group:  # legacy Nadam: its running product, carried over from the file
        assert group["momentum_cache"] == float(model.optimizer._m_cache.numpy()) != 1.0
    torch_losses = torch_steps(result, training, data[10:])
    keras_losses = keras_steps(model, data[10:])
    np.testing.assert_allclose(torch_losses, keras_losses, rtol=RTOL)
    errors = compare_weights(model, result.module, tmp_path, suffix=".h5")
    assert max(errors.values()) < RTOL, errors


@pytest.mark.parametrize("raw, message", [
    # tf.keras has no legacy Lion: a Lion config without is_legacy_optimizer=False is not one we know.
    pytest.param({"class_name": "Lion", "config": {"learning_rate": 0.01}},
                 "legacy optimizer Lion .*Recompile the model with tf.keras.optimizers.Lion", id="legacy_lion"),
    pytest.param({"class_name": "Nadam", "config": {"learning_rate": {"class_name": "ExponentialDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.5}}, "decay": 0.004}},
        "legacy Nadam with a learning rate schedule", id="legacy_nadam_schedule"),
])
def test_tf_keras_unsupported_legacy_optimizer_is_a_clear_error(raw, message):
    with pytest.raises(UnsupportedTraining, match=message):
        parse_optimizer(raw, 2)


@pytest.mark.parametrize("raw, keras_major, expected", [
    pytest.param({"class_name": "Adagrad", "config": {"name": "Adagrad", "learning_rate": 0.1, "decay": 0.0,
                                                       "initial_accumulator_value": 0.1, "epsilon": 1e-7}},
                 2, "KerasLegacyAdagrad", id="tf2_10_adagrad"),
    pytest.param({"class_name": "Custom>Adagrad", "config": {"learning_rate": 0.1, "is_legacy_optimizer": False}},
                 2, "KerasAdagrad", id="tf2_11_adagrad"),
    pytest.param({"class_name": "Nadam", "config": {"learning_rate": 0.1, "is_legacy_optimizer": False}},
                 2, "KerasNadamTF2", id="tf2_nadam_without_prefix"),
    pytest.param({"module": "keras.optimizers", "class_name": "Nadam", "config": {"learning_rate": 0.1}},
                 3, "KerasNadam", id="keras3_nadam"),
    pytest.param({"module": "keras.optimizers", "class_name": "Adagrad", "config": {"learning_rate": 0.1}},
                 3, "KerasAdagrad", id="keras3_adagrad"),
])
def test_optimizer_flavour_from_config(raw, keras_major, expected):
    """Which update rule a saved config selects (legacy: plain class name, no is_legacy_optimizer=False)."""
    assert parse_optimizer(raw, keras_major).ctor == expected
