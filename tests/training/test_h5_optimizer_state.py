"""Optimizer state from a .h5 file: train 10 steps in tf.keras 2 (tf_keras), save .h5 (its
`optimizer_weights`), convert, train 10 more in torch == 20 steps in tf.keras. Both tf.keras
optimizer families (tf_keras.optimizers.X and tf_keras.optimizers.legacy.X name their slots
differently), and Keras 3's own .h5 writer."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from training_helpers import RTOL, batches, compare_weights, keras_steps, torch_steps

import tf2torch
from tf2torch.training.compile_config import UnsupportedTraining

SHAPE = (7, 9, 2)
CLASSES = 3


def small_cnn(k):
    """Conv (no bias: before BatchNorm its gradient is float noise) -> BN -> Dense layers."""
    inputs = k.Input(SHAPE, name="image")
    x = k.layers.Conv2D(5, 3, name="conv", use_bias=False, kernel_regularizer=k.regularizers.L2(0.01))(inputs)
    x = k.layers.BatchNormalization(name="bn")(x)
    x = k.layers.Flatten(name="flatten")(x)
    x = k.layers.Dense(6, activation="tanh", name="hidden")(x)
    outputs = k.layers.Dense(CLASSES, activation="softmax", name="probs")(x)
    return k.Model(inputs, outputs, name="small_cnn")


OPTIMIZERS = {
    "sgd_momentum": lambda k: k.optimizers.SGD(0.05, momentum=0.9),
    "adam_amsgrad": lambda k: k.optimizers.Adam(0.01, amsgrad=True),
    "rmsprop_centered_momentum": lambda k: k.optimizers.RMSprop(0.01, momentum=0.3, centered=True),
    "legacy_sgd_nesterov": lambda k: k.optimizers.legacy.SGD(0.05, momentum=0.9, nesterov=True),
    "legacy_adam_decay": lambda k: k.optimizers.legacy.Adam(0.01, decay=0.05),
    "legacy_rmsprop_centered_momentum": lambda k: k.optimizers.legacy.RMSprop(0.01, momentum=0.3, centered=True),
    "adamw_ema": lambda k: k.optimizers.AdamW(0.01, use_ema=True, ema_momentum=0.9),
    "adamax": lambda k: k.optimizers.Adamax(0.02),
    "adagrad": lambda k: k.optimizers.Adagrad(0.1),
    "adadelta": lambda k: k.optimizers.Adadelta(1.0),
    "ftrl": lambda k: k.optimizers.Ftrl(0.1, l1_regularization_strength=0.01),
    "lion": lambda k: k.optimizers.Lion(0.002),
}
DEFAULT = {"sgd_momentum", "adam_amsgrad", "rmsprop_centered_momentum", "legacy_adam_decay",
           "legacy_rmsprop_centered_momentum"}


def resume(k, optimizer, tmp_path):
    """(tf.keras model after 20 steps, converted module after 10 + 10 steps, torch and Keras
    losses of the last 10)."""
    k.utils.set_random_seed(3)
    model = small_cnn(k)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    data = batches(SHAPE, CLASSES, 20, 5)
    keras_steps(model, data[:10])
    model.save(tmp_path / "after10.h5")
    result = tf2torch.convert(tmp_path / "after10.h5")
    training = result.training_setup()
    if not isinstance(training.optimizer, torch.optim.SGD):  # (torch's SGD needs no step count)
        assert training.optimizer.param_groups[0]["iterations"] == 10
    assert training.optimizer.state, "no optimizer state carried over"
    torch_losses = torch_steps(result, training, data[10:])
    keras_losses = keras_steps(model, data[10:])
    return model, result, torch_losses, keras_losses


@pytest.mark.parametrize("optimizer", [
    pytest.param(name, id=name, marks=() if name in DEFAULT else pytest.mark.slow) for name in OPTIMIZERS
])
def test_resume_from_tf_keras_h5_optimizer_state(optimizer, tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    model, result, torch_losses, keras_losses = resume(tf_keras, OPTIMIZERS[optimizer](tf_keras), tmp_path)
    np.testing.assert_allclose(torch_losses, keras_losses, rtol=RTOL)
    errors = compare_weights(model, result.module, tmp_path, suffix=".h5")
    assert max(errors.values()) < RTOL, errors


def test_h5_slots_are_the_saved_moments(tmp_path):
    """The torch state *is* tf.keras' (torch layout): a fresh optimizer would diverge at once."""
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(3)
    model = small_cnn(tf_keras)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    keras_steps(model, batches(SHAPE, CLASSES, 3, 5))
    model.save(tmp_path / "m.h5")
    result = tf2torch.convert(tmp_path / "m.h5")
    state = result.training_setup().optimizer.state[result.module.get_parameter("conv.weight")]
    kernel_m = next(v for v in model.optimizer.variables if "m/conv/kernel" in v.name).numpy()
    np.testing.assert_array_equal(state["momentum"].numpy(), np.transpose(kernel_m, (3, 2, 0, 1)))
    fresh = result.training_setup(load_optimizer_state=False)
    assert fresh.optimizer.param_groups[0]["iterations"] == 0 and not fresh.optimizer.state


def test_resume_from_keras3_h5_optimizer_state(tmp_path):
    """Keras 3 writes .h5 too: its optimizer_weights are optimizer.variables in order."""
    model, result, torch_losses, keras_losses = resume(keras, keras.optimizers.Adam(0.01), tmp_path)
    np.testing.assert_allclose(torch_losses, keras_losses, rtol=RTOL)
    errors = compare_weights(model, result.module, tmp_path, suffix=".h5")
    assert max(errors.values()) < RTOL, errors


def rename_slot(path, old: str, new: str) -> None:
    """Rewrite a .h5's optimizer_weights so that slot `old` is called `new` (a layout we do not know)."""
    import h5py

    with h5py.File(path, "r+") as h5:
        group = h5["optimizer_weights"]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]
        renamed = [n.replace(f"/{old}/", f"/{new}/") for n in names]
        for before, after in zip(names, renamed):
            if before != after:
                group[after] = group[before][()]
        group.attrs["weight_names"] = [n.encode() for n in renamed]


UNMAPPED = {
    # (Nadam's and legacy Adagrad's states are mapped now: tests/training/test_tf_keras_optimizers.py.)
    "unknown_slot": (lambda k: k.optimizers.Adam(0.01), "Adam slot 'q' has no counterpart", ("m", "q")),
}


@pytest.mark.parametrize("optimizer", list(UNMAPPED), ids=list(UNMAPPED))
def test_unmapped_h5_optimizer_state_is_a_clear_error(optimizer, tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    build, message, renamed = UNMAPPED[optimizer]
    tf_keras.utils.set_random_seed(3)
    model = small_cnn(tf_keras)
    model.compile(optimizer=build(tf_keras), loss="sparse_categorical_crossentropy")
    keras_steps(model, batches(SHAPE, CLASSES, 2, 5))
    model.save(tmp_path / "m.h5")
    rename_slot(tmp_path / "m.h5", *renamed)
    result = tf2torch.convert(tmp_path / "m.h5")
    with pytest.raises(UnsupportedTraining, match=message) as error:
        result.training_setup()
    assert "load_optimizer_state=False" in str(error.value)
    assert result.training_setup(load_optimizer_state=False).optimizer.param_groups[0]["iterations"] == 0
    # save() still writes train.py (it then starts from a fresh optimizer), without optimizer state.
    with pytest.warns(UserWarning, match="optimizer.safetensors not written"):
        written = result.save(tmp_path / "out")
    assert (written / "train.py").exists() and not (written / "optimizer.safetensors").exists()


def test_h5_optimizer_state_is_written_next_to_train_py(tmp_path):
    """save(): optimizer.safetensors from the .h5's state, in train.py's checkpoint format
    (torch.optim.SGD's momentum buffer: Keras' momentum divided by -lr)."""
    tf_keras = pytest.importorskip("tf_keras")
    from safetensors import safe_open

    tf_keras.utils.set_random_seed(3)
    model = small_cnn(tf_keras)
    model.compile(optimizer=tf_keras.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy")
    keras_steps(model, batches(SHAPE, CLASSES, 2, 5))
    model.save(tmp_path / "m.h5")
    written = tf2torch.convert(tmp_path / "m.h5").save(tmp_path / "out")
    with safe_open(str(written / "optimizer.safetensors"), framework="pt") as f:
        keys = set(f.keys())
        momentum = f.get_tensor("probs.weight.momentum_buffer")
    assert "conv.weight.momentum_buffer" in keys and "bn.weight.momentum_buffer" in keys
    expected = next(v for v in model.optimizer.variables if "m/probs/kernel" in v.name).numpy().T / np.float32(-0.05)
    np.testing.assert_allclose(momentum.numpy(), expected, rtol=1e-6)
    assert torch.count_nonzero(momentum) > 0
