"""Build the bundled example, examples/small_cnn.keras: a small Keras 3 CNN.

Run once with `python examples/make_example.py`; the saved file is kept in the repository
(about 115 KB). Weights are perturbed (non-zero biases, realistic BatchNorm statistics)
so that a conversion that drops a bias or swaps a statistic cannot pass verification.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np

OUTPUT = Path(__file__).resolve().parent / "small_cnn.keras"


def build_model() -> keras.Model:
    inputs = keras.Input(shape=(33, 35, 3), name="image")
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(24, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def perturb(model: keras.Model, seed: int = 0) -> None:
    """Random biases and BatchNorm statistics like those of a trained network."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense | keras.layers.Conv2D) and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0.0, 0.1, bias.shape).astype(np.float32)])
        elif isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            gamma = rng.uniform(0.7, 1.3, n)
            beta = rng.normal(0.0, 0.1, n)
            mean = rng.normal(0.0, 0.5, n)
            variance = rng.uniform(0.3, 2.0, n)
            layer.set_weights([w.astype(np.float32) for w in (gamma, beta, mean, variance)])


def main() -> None:
    keras.utils.set_random_seed(0)
    model = build_model()
    perturb(model)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(OUTPUT)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1024:.1f} KB, {model.count_params()} parameters)")


if __name__ == "__main__":
    main()
