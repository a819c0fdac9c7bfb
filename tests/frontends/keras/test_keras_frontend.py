"""The Keras frontend: file formats, model kinds, Keras 2 vs 3 configs, error reporting."""

from __future__ import annotations

import numpy as np
import pytest

import tf2torch
from conftest import convert_and_compare
from tf2torch.errors import BadModelFile, UnsupportedLayers


def _functional_with_nesting(k):
    """Shared layer called twice, a nested Sequential, two inputs, two outputs."""
    image = k.Input((13, 17, 3), name="image")
    aux = k.Input((4,), name="aux")
    x = k.layers.Conv2D(4, 3, padding="same", activation="relu")(image)
    x = k.layers.GlobalAveragePooling2D()(x)
    shared = k.layers.Dense(4, name="shared")
    a = shared(x)
    b = shared(a)
    sub = k.Sequential([k.layers.Dense(5, activation="tanh"), k.layers.Dense(3)], name="sub")
    y = sub(b)
    z = k.layers.Concatenate()([y, aux])
    return k.Model([image, aux], [z, a])


def _nested_functional(k):
    inner_in = k.Input((6,))
    inner = k.Model(inner_in, k.layers.Dense(2, name="inner_dense")(k.layers.Dense(5)(inner_in)), name="inner")
    outer_in = k.Input((6,))
    out = k.layers.Add()([inner(outer_in), k.layers.Dense(2)(outer_in)])
    return k.Model(outer_in, out)


@pytest.mark.parametrize("suffix", [".keras", ".h5"], ids=["keras3_archive", "keras3_legacy_h5"])
def test_keras3_functional_with_shared_nested_and_multi_io(keras, tmp_path, suffix):
    result = convert_and_compare(_functional_with_nesting(keras), tmp_path, suffix=suffix)
    assert "self.shared(" in result.source_code
    assert result.source_code.count("self.shared = ") == 1  # one module for both calls


def test_tf_keras2_functional_with_shared_nested_and_multi_io(tmp_path):
    import tf_keras

    convert_and_compare(_functional_with_nesting(tf_keras), tmp_path, suffix=".h5")


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras2"])
def test_nested_functional_model(tmp_path, flavour):
    if flavour == "keras3":
        import keras as k

        suffix = ".keras"
    else:
        import tf_keras as k

        suffix = ".h5"
    convert_and_compare(_nested_functional(k), tmp_path, suffix=suffix)


def test_seed_dense_1_to_1_becomes_linear(keras, tmp_path):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    result = convert_and_compare(model, tmp_path)
    assert "nn.Linear(1, 1)" in result.source_code
    linears = [m for m in result.module.modules() if isinstance(m, __import__("torch").nn.Linear)]
    assert len(linears) == 1


def test_seed_tf_keras_h5_sequential_with_input_shape(tmp_path):
    import tf_keras

    model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(1,))])
    result = convert_and_compare(model, tmp_path, suffix=".h5")
    assert result.keras_major == 2
    assert "nn.Linear(1, 1)" in result.source_code


def test_seed_conv_relu_same_infers_in_channels(keras, tmp_path):
    model = keras.Sequential([keras.Input((15, 11, 5)), keras.layers.Conv2D(32, (3, 3), activation="relu", padding="same")])
    result = convert_and_compare(model, tmp_path)
    assert "nn.Conv2d(5, 32, kernel_size=3, padding=1)" in result.source_code
    assert "F.relu(x, inplace=True)" in result.source_code  # the conv's output is read only here


def test_seed_tensorflow_model_h5_cnn(tmp_path):
    """A typical tf.keras 2.x CNN saved as tensorflow_model.h5."""
    import tf_keras

    model = tf_keras.Sequential([
        tf_keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", input_shape=(21, 19, 3)),
        tf_keras.layers.BatchNormalization(),
        tf_keras.layers.MaxPooling2D(),
        tf_keras.layers.Flatten(),
        tf_keras.layers.Dropout(0.25),
        tf_keras.layers.Dense(7, activation="softmax"),
    ])
    model.compile("adam", "categorical_crossentropy")
    result = convert_and_compare(model, tmp_path, suffix=".h5")
    assert result.compile_config is not None
    assert ".permute(" not in result.source_code


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras2"])
def test_live_model_object(tmp_path, flavour):
    if flavour == "keras3":
        import keras as k
    else:
        import tf_keras as k
    from conftest import perturb_weights

    model = k.Sequential([k.Input((9,)), k.layers.Dense(4, activation="relu"), k.layers.Dense(2)])
    perturb_weights(model)
    result = tf2torch.convert(model)
    report = result.verify(batch_size=4)
    assert report.ok, report.table()


def test_sequential_without_input_layer_uses_build_shape(keras, tmp_path):
    model = keras.Sequential([keras.layers.Dense(3), keras.layers.Dense(2)])
    model.build((None, 5))
    convert_and_compare(model, tmp_path)


def test_unsupported_layers_are_all_listed_before_any_output(keras, tmp_path):
    inp = keras.Input((7, 5, 3))
    x = keras.layers.ContrastLimitedAdaptiveHistogramEqualization(value_range=(0, 1), name="first_refused")(inp)
    x = keras.layers.Dense(3)(x)
    x = keras.layers.ContrastLimitedAdaptiveHistogramEqualization(value_range=(0, 1), name="second_refused")(x)
    model = keras.Model(inp, keras.layers.Dense(1)(x))
    path = tmp_path / "wrappers.keras"
    model.save(path)
    with pytest.raises(UnsupportedLayers) as info:
        tf2torch.convert(str(path))
    message = str(info.value)
    assert "first_refused (ContrastLimitedAdaptiveHistogramEqualization)" in message
    assert "second_refused (ContrastLimitedAdaptiveHistogramEqualization)" in message
    assert "register_layer" in message


@pytest.mark.parametrize(
    "content, expected",
    [(b"not a model at all", "neither a .keras archive"), (None, "no such file")],
    ids=["garbage", "missing"],
)
def test_bad_files_raise_clear_errors(tmp_path, content, expected):
    path = tmp_path / "model.keras"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadModelFile, match=expected):
        tf2torch.convert(str(path))


def test_weights_only_h5_is_refused(keras, tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "only.weights.h5"
    model.save_weights(path)
    with pytest.raises(BadModelFile, match="weights only"):
        tf2torch.convert(str(path))


def test_integer_input_embedding_model(keras, tmp_path):
    inp = keras.Input((11,), dtype="int32")
    x = keras.layers.Embedding(30, 6)(inp)
    x = keras.layers.GlobalAveragePooling1D()(x)
    convert_and_compare(keras.Model(inp, keras.layers.Dense(3)(x)), tmp_path, inputs=[np.random.default_rng(1).integers(0, 30, (4, 11)).astype("int32")])


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_tf_keras2_model_saved_as_keras_archive_computes_as_keras2(tmp_path, nested):
    """tf_keras also writes .keras archives (metadata keras_version 2.x): their layers follow
    Keras 2 semantics (here the steeper hard_sigmoid and Masking -> LSTM), as tf.keras computes."""
    import tf_keras

    inputs = tf_keras.Input((7, 5))
    x = tf_keras.layers.Masking(name="mask")(inputs)
    x = tf_keras.layers.LSTM(4, recurrent_activation="hard_sigmoid", return_sequences=True, name="lstm")(x)
    x = tf_keras.layers.Dense(3, activation="hard_sigmoid", name="head")(x)
    model = tf_keras.Model(inputs, x, name="inner")
    if nested:
        outer_in = tf_keras.Input((7, 5))
        model = tf_keras.Model(outer_in, tf_keras.layers.Dense(2, name="out")(model(outer_in)))
    inputs = np.random.default_rng(0).normal(size=(3, 7, 5)).astype("float32")
    inputs[0, 5:] = 0.0  # a masked tail
    inputs[2, :2] = 0.0  # and a masked head
    convert_and_compare(model, tmp_path, suffix=".keras", inputs=[inputs])
