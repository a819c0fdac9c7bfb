"""Unsupported classes: the message tells a built-in Keras layer ("not supported yet, because")
from a custom one (how to pass its code) and from a Lambda (the opt-in), all listed at once."""

from __future__ import annotations

import pytest

import tf2torch
from tf2torch.cli import main
from tf2torch.frontends.keras.unsupported import is_builtin_layer, unsupported_reason


@pytest.mark.parametrize(
    "raw, builtin",
    [
        ({"module": "keras.layers", "class_name": "Foo", "registered_name": None}, True),
        ({"module": "keras.src.layers.preprocessing.foo", "class_name": "Foo"}, True),
        ({"module": "tf_keras.src.layers.core.foo", "class_name": "Foo", "registered_name": "Foo"}, True),
        ({"module": "my_project.layers", "class_name": "Foo", "registered_name": "my_project>Foo"}, False),
        ({"module": "keras.layers", "class_name": "Foo", "registered_name": "Custom>Foo"}, False),
        ({"class_name": "Foo", "config": {}}, False),
    ],
    ids=["keras3", "keras3_src", "tf_keras", "registered_package", "registered_custom", "no_module"],
)
def test_builtin_layers_are_told_from_custom_ones(raw, builtin):
    assert is_builtin_layer(raw) is builtin
    reason = unsupported_reason(raw, "Foo")
    if builtin:
        assert reason.startswith("a built-in Keras layer, not supported yet, because")
    else:
        assert reason.startswith("a custom layer") and "custom_objects" in reason and 'register_layer("Foo")' in reason


def test_custom_and_lambda_layers_are_listed_with_what_to_do(keras, tmp_path, capsys):
    @keras.saving.register_keras_serializable(package="tf2torch_tests")
    class Doubler(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    inp = keras.Input((5,))
    x = Doubler(name="double")(inp)
    x = keras.layers.Lambda(lambda t: t + 1.0, name="plus_one")(x)
    path = tmp_path / "custom.keras"
    keras.Model(inp, keras.layers.Dense(2)(x)).save(path)
    with pytest.raises(tf2torch.UnsupportedLayers) as info:
        tf2torch.convert(str(path))
    lines = str(info.value).splitlines()
    assert lines[0].endswith("2 layer(s) cannot be converted:")
    assert "double (Doubler): a custom layer" in lines[1] and "custom_objects" in lines[1]
    assert "plus_one (Lambda)" in lines[2] and "--allow-lambda" in lines[2]
    assert main(["convert", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "a custom layer" in err and not (tmp_path / "out").exists()
