"""Write the TF.js test fixtures in tests/fixtures/tfjs/ with the `tensorflowjs` converter.

Needs TensorFlow, tf_keras and the `tensorflowjs` package. tensorflowjs pins an older
TensorFlow, so install it apart, without its dependencies, and put it on the path:

    pip install --no-deps --target /tmp/tfjs-site tensorflowjs
    PYTHONPATH=/tmp/tfjs-site python scripts/make_tfjs_fixtures.py

Its optional dependencies (jax, tensorflow_decision_forests, tensorflow_hub) are replaced by
empty modules: only the Keras and SavedModel converters are used.

Each fixture directory holds what the converter wrote (model.json + shards) and
expected.npz: an input batch `x` and the output `y` TensorFlow computes for it on the
source model (for the uint8 fixture: on the source model with the weights as TF.js
dequantizes them, read back with tensorflowjs' own reader).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
import tf_keras

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tfjs"


def _stub_optional_dependencies() -> None:
    for name in ("jax", "jax.experimental", "jax.experimental.jax2tf", "tensorflow_decision_forests", "tensorflow_hub"):
        sys.modules.setdefault(name, types.ModuleType(name))


def small_cnn() -> tf_keras.Model:
    """Conv (stride 2) + BatchNorm + ReLU, depthwise conv, pooling, Flatten + Dense on a
    15x13 image; every weight and BatchNorm statistic random (nothing at its initial value)."""
    tf_keras.utils.set_random_seed(7)
    layers = tf_keras.layers
    image = layers.Input((15, 13, 3), name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", name="conv")(image)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-4, name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.DepthwiseConv2D(3, padding="valid", activation="relu6", name="dw")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(5, activation="softmax", name="logits")(x)
    model = tf_keras.Model(image, x, name="small_cnn")
    rng = np.random.default_rng(7)
    for layer in model.layers:
        weights = layer.get_weights()
        if layer.name == "bn":
            gamma, beta, mean, variance = weights
            weights = [rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.3, beta.shape),
                       rng.normal(0, 0.5, mean.shape), rng.uniform(0.3, 2.0, variance.shape)]
        else:
            weights = [w + rng.normal(0, 0.2, w.shape) for w in weights]
        layer.set_weights([np.asarray(w, np.float32) for w in weights])
    return model


def sequence_model() -> tf_keras.Model:
    """LSTM, bidirectional GRU and a nested Sequential: weights named by sub-scopes
    (`lstm/lstm_cell/kernel`, `bi/forward_gru/gru_cell/bias`) and inside a nested model."""
    tf_keras.utils.set_random_seed(11)
    layers = tf_keras.layers
    block = tf_keras.Sequential([layers.Dense(6, activation="tanh", name="inner_dense"),
                                 layers.LayerNormalization(epsilon=1e-4, name="ln")], name="block")
    sequence = layers.Input((7, 4), name="sequence")
    x = layers.LSTM(5, return_sequences=True, name="lstm")(sequence)
    x = layers.Bidirectional(layers.GRU(3, return_sequences=True), merge_mode="sum", name="bi")(x)
    x = block(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    model = tf_keras.Model(sequence, layers.Dense(2, name="head")(x), name="sequence_model")
    rng = np.random.default_rng(11)
    for weight in model.weights:
        weight.assign(weight + rng.normal(0, 0.2, weight.shape).astype(np.float32))
    return model


def keras3_model():
    """A Keras 3 model: TF.js names its weights by attribute path (`layers/dense_1/vars/0`,
    `layers/lstm/cell/vars/1`, `layers/block/layers/dense/vars/0`)."""
    import keras

    keras.utils.set_random_seed(5)
    layers = keras.layers
    block = keras.Sequential([layers.Dense(6, activation="gelu"), layers.Dense(6)], name="block")
    sequence = keras.Input((9, 4), name="sequence")
    x = layers.Conv1D(5, 3, padding="causal", name="conv")(sequence)
    x = layers.BatchNormalization(epsilon=1e-3, name="bn")(x)
    x = layers.LSTM(6, return_sequences=True, name="lstm")(x)
    x = block(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    model = keras.Model(sequence, layers.Dense(3, name="head")(x), name="keras3_model")
    rng = np.random.default_rng(5)
    for weight in model.weights:
        weight.assign(weight + rng.uniform(0.1, 0.3, weight.shape).astype(np.float32))
    return model


def _save_expected(directory: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez(directory / "expected.npz", x=x, y=np.asarray(y, np.float32))


def main() -> None:
    _stub_optional_dependencies()
    from tensorflowjs.converters import keras_h5_conversion, tf_saved_model_conversion_v2
    from tensorflowjs.read_weights import read_weights

    model = small_cnn()
    x = np.random.default_rng(1).normal(size=(3, 15, 13, 3)).astype(np.float32)
    y = model(x, training=False).numpy()
    shutil.rmtree(OUT, ignore_errors=True)

    layers_dir = OUT / "small_cnn_layers"
    keras_h5_conversion.save_keras_model(model, str(layers_dir))
    _save_expected(layers_dir, x, y)

    quantized_dir = OUT / "small_cnn_layers_uint8"
    keras_h5_conversion.save_keras_model(model, str(quantized_dir), quantization_dtype_map={"uint8": "*"})
    manifest = json.loads((quantized_dir / "model.json").read_text())["weightsManifest"]
    dequantized = {entry["name"]: entry["data"] for group in read_weights(manifest, str(quantized_dir))
                   for entry in group}
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([dequantized[v.name.removesuffix(":0")] for v in layer.weights])
    _save_expected(quantized_dir, x, model(x, training=False).numpy())

    graph_dir = OUT / "small_cnn_graph"
    model = small_cnn()  # the float weights again
    with tempfile.TemporaryDirectory() as saved:
        tf.saved_model.save(model, saved)
        tf_saved_model_conversion_v2.convert_tf_saved_model(saved, str(graph_dir))
    _save_expected(graph_dir, x, y)

    # float16 weights: expected is the float32 source's output (the test allows the rounding).
    float16_dir = OUT / "small_cnn_graph_float16"
    with tempfile.TemporaryDirectory() as saved:
        tf.saved_model.save(model, saved)
        tf_saved_model_conversion_v2.convert_tf_saved_model(saved, str(float16_dir),
                                                            quantization_dtype_map={"float16": "*"})
    _save_expected(float16_dir, x, y)

    sequence_dir = OUT / "sequence_layers"
    model = sequence_model()
    keras_h5_conversion.save_keras_model(model, str(sequence_dir))
    x = np.random.default_rng(2).normal(size=(3, 7, 4)).astype(np.float32)
    _save_expected(sequence_dir, x, model(x, training=False).numpy())
    keras3_dir = OUT / "keras3_layers"
    model = keras3_model()
    with tempfile.TemporaryDirectory() as saved:
        model.save(os.path.join(saved, "model.keras"))
        from tensorflowjs.converters import converter

        converter.dispatch_keras_keras_to_tfjs_layers_model_conversion(os.path.join(saved, "model.keras"),
                                                                       str(keras3_dir))
    x = np.random.default_rng(3).normal(size=(3, 9, 4)).astype(np.float32)
    _save_expected(keras3_dir, x, np.asarray(model(x, training=False)))
    for directory in (layers_dir, quantized_dir, graph_dir, float16_dir, sequence_dir, keras3_dir):
        total = sum(f.stat().st_size for f in directory.iterdir())
        print(f"{directory.relative_to(OUT.parent.parent.parent)}: {total} bytes")


if __name__ == "__main__":
    main()
