"""25 training steps in Keras (TF backend) vs 25 steps of the converted module, from the
same weights and batches: same loss curve, weights within 1e-4 relative."""

from __future__ import annotations

import keras
import pytest
from training_helpers import batches, run_parity

STEPS = 25
BATCH = 6

OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.05),
    "sgd_momentum_piecewise": lambda: keras.optimizers.SGD(
        keras.optimizers.schedules.PiecewiseConstantDecay([5, 12], [0.1, 0.03, 0.01]), momentum=0.8),
    "sgd_nesterov_clipvalue": lambda: keras.optimizers.SGD(0.05, momentum=0.7, nesterov=True, clipvalue=0.05),
    "adam": lambda: keras.optimizers.Adam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6),
    "adam_amsgrad_global_clipnorm": lambda: keras.optimizers.Adam(0.02, amsgrad=True, global_clipnorm=0.3),
    "adam_weight_decay_ema": lambda: keras.optimizers.Adam(0.01, weight_decay=0.05, use_ema=True, ema_momentum=0.9,
                                                           ema_overwrite_frequency=4),
    "adamw_clipnorm": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1, clipnorm=0.2),
    "rmsprop": lambda: keras.optimizers.RMSprop(0.005, rho=0.8),
    "rmsprop_centered_momentum": lambda: keras.optimizers.RMSprop(0.005, momentum=0.6, centered=True),
    "adagrad": lambda: keras.optimizers.Adagrad(0.1, initial_accumulator_value=0.3),
    "adadelta": lambda: keras.optimizers.Adadelta(2.0, rho=0.9),
    "adamax": lambda: keras.optimizers.Adamax(0.02),
    "nadam": lambda: keras.optimizers.Nadam(0.01),
    "lion": lambda: keras.optimizers.Lion(0.002, beta_1=0.85),
    "ftrl": lambda: keras.optimizers.Ftrl(0.2, l1_regularization_strength=0.01, l2_regularization_strength=0.02,
                                          l2_shrinkage_regularization_strength=0.01, beta=0.1),
}


def mlp(bias_l1: bool = True, activation: str = "softmax") -> keras.Model:
    """Dense layers with an L2 kernel regularizer, an L1 bias regularizer and a MaxNorm constraint."""
    inputs = keras.Input((7,), name="features")
    x = keras.layers.Dense(11, activation="relu", name="hidden", kernel_regularizer=keras.regularizers.L2(0.01),
                           bias_regularizer=keras.regularizers.L1(0.003) if bias_l1 else None,
                           kernel_constraint=keras.constraints.MaxNorm(0.8))(inputs)
    x = keras.layers.Dropout(0.0, name="drop")(x)
    outputs = keras.layers.Dense(5, activation=activation, name="probs")(x)
    return keras.Model(inputs, outputs, name="mlp")


def cnn_bn() -> keras.Model:
    inputs = keras.Input((9, 11, 3), name="image")
    x = keras.layers.Conv2D(6, 3, name="conv1", use_bias=False, kernel_regularizer=keras.regularizers.L2(0.002))(inputs)
    x = keras.layers.BatchNormalization(name="bn1", momentum=0.9)(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv2", use_bias=False,
                            kernel_constraint=keras.constraints.MaxNorm(0.5, axis=[0, 1, 2]))(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="cnn_bn")


def lstm_classifier() -> keras.Model:
    inputs = keras.Input((6, 5), name="sequence")
    x = keras.layers.LSTM(8, name="lstm")(inputs)
    outputs = keras.layers.Dense(4, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="lstm_classifier")


MODELS = {
    "mlp": (mlp, (7,), 5),
    "cnn_bn": (cnn_bn, (9, 11, 3), 3),
    "lstm": (lstm_classifier, (6, 5), 4),
}


def parity(model_name: str, optimizer: keras.optimizers.Optimizer, tmp_path, loss="sparse_categorical_crossentropy"):
    build, shape, classes = MODELS[model_name]
    keras.utils.set_random_seed(1)
    model = build()
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return run_parity(model, batches(shape, classes, STEPS, BATCH), tmp_path)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS), ids=list(OPTIMIZERS))
def test_mlp_parity_per_optimizer(optimizer, tmp_path):
    parity("mlp", OPTIMIZERS[optimizer](), tmp_path).check()


CNN_DEFAULT = {
    "adam_cosine_warmup": lambda: keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(0.001, 20, alpha=0.1, warmup_target=0.01, warmup_steps=5)),
    "sgd_momentum_exponential": lambda: keras.optimizers.SGD(
        keras.optimizers.schedules.ExponentialDecay(0.05, 4, 0.7, staircase=True), momentum=0.9),
}


@pytest.mark.parametrize("optimizer", list(CNN_DEFAULT), ids=list(CNN_DEFAULT))
def test_cnn_batchnorm_parity(optimizer, tmp_path):
    parity("cnn_bn", CNN_DEFAULT[optimizer](), tmp_path).check()


def test_lstm_classifier_parity(tmp_path):
    parity("lstm", keras.optimizers.RMSprop(0.01, momentum=0.5), tmp_path).check()


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["cnn_bn", "lstm"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS), ids=list(OPTIMIZERS))
def test_parity_matrix(model_name, optimizer, tmp_path):
    parity(model_name, OPTIMIZERS[optimizer](), tmp_path).check()


LOSSES = {
    "categorical_crossentropy_smoothing": (keras.losses.CategoricalCrossentropy(label_smoothing=0.2), "onehot:5"),
    "sparse_categorical_crossentropy": (keras.losses.SparseCategoricalCrossentropy(), 5),
    "binary_crossentropy": (keras.losses.BinaryCrossentropy(label_smoothing=0.1), "binary:5"),
    "mse_sum": (keras.losses.MeanSquaredError(reduction="sum"), "regress:5"),
    # Keras 3 does not save Huber's delta: a saved model trains with the default after reloading.
    "huber": (keras.losses.Huber(), "regress:5"),
    "kl_divergence": (keras.losses.KLDivergence(), "onehot:5"),
}


@pytest.mark.parametrize("loss", list(LOSSES), ids=list(LOSSES))
def test_mlp_parity_per_loss(loss, tmp_path):
    keras_loss, labels = LOSSES[loss]
    keras.utils.set_random_seed(1)
    # No L1 on the biases here: near zero its sign() gradient, normalized by Adam, turns float
    # noise into full-size steps (chaotic in any two implementations).
    model = mlp(bias_l1=False, activation="sigmoid" if str(labels).startswith("binary") else "softmax")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras_loss)
    parity_result = run_parity(model, batches((7,), labels, STEPS, BATCH), tmp_path)
    parity_result.check()
