"""Build the small valid models the fuzz cases are derived from (run in a subprocess: it
imports TensorFlow, which must not be loaded in the process that forks the fuzz workers).

    python make_fixtures.py OUTDIR  ->  OUTDIR/small.keras, small.h5, saved_model/, frozen.pb
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def build_keras3(path: str) -> None:
    import keras

    inputs = keras.Input((5, 7, 3), name="image")
    x = keras.layers.Conv2D(4, 3, strides=(1, 2), padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    keras.Model(inputs, outputs, name="small").save(path)


def build_tf_keras(path: str) -> None:
    import tf_keras

    model = tf_keras.Sequential(
        [
            tf_keras.Input((6,), name="features"),
            tf_keras.layers.Dense(5, activation="tanh", name="hidden"),
            tf_keras.layers.Dense(2, name="head"),
        ],
        name="small_h5",
    )
    model.save(path)


def build_saved_model(directory: str, frozen_path: str) -> None:
    import tensorflow as tf

    class Affine(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = tf.Variable(tf.random.stateless_normal((4, 3), seed=(1, 2)), name="kernel")

        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.nn.relu(tf.matmul(x, self.kernel))}

    module = Affine()
    tf.saved_model.save(module, directory, signatures={"serving_default": module.__call__})
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(module.__call__.get_concrete_function())
    with open(frozen_path, "wb") as handle:
        handle.write(frozen.graph.as_graph_def().SerializeToString())


if __name__ == "__main__":
    out = sys.argv[1]
    build_keras3(os.path.join(out, "small.keras"))
    build_tf_keras(os.path.join(out, "small.h5"))
    build_saved_model(os.path.join(out, "saved_model"), os.path.join(out, "frozen.pb"))
