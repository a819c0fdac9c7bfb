"""`--custom-code`: importing the user's module, what it contributes, and its errors."""

from __future__ import annotations

import sys
import textwrap

import pytest

from tf2torch import cli
from tf2torch.custom_code import load_custom_code
from tf2torch.errors import BadModelFile


def _write(tmp_path, name, text):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    return path


def test_classes_registered_defined_and_listed_are_all_found(tmp_path):
    path = _write(tmp_path, "cc_layers", """
        import keras


        @keras.saving.register_keras_serializable(package="cc_pkg")
        class Registered(keras.layers.Layer):
            pass


        class Defined(keras.layers.Layer):
            pass


        class _Helper:
            pass


        custom_objects = {"Listed": _Helper}
    """)
    objects = load_custom_code([str(path)])
    assert objects["cc_pkg>Registered"].__name__ == "Registered"
    assert objects["Defined"].__name__ == "Defined"
    assert objects["Listed"].__name__ == "_Helper"
    assert "_Helper" not in objects  # not a Keras class, not listed under its own name


def test_an_importable_module_name(tmp_path, monkeypatch):
    _write(tmp_path, "cc_by_name", """
        import keras


        class ByName(keras.layers.Layer):
            pass
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "ByName" in load_custom_code(["cc_by_name"])
    sys.modules.pop("cc_by_name", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("raise RuntimeError('needs a GPU')\n", r"importing it failed \(.*cc_broken\.py, line 1\): RuntimeError: needs a GPU"),
        ("def broken(:\n", r"importing it failed .*SyntaxError"),
        ("custom_objects = ['not', 'a', 'dict']\n", r"`custom_objects` must be a dict"),
    ],
)
def test_a_broken_module_is_a_clear_error(tmp_path, text, expected):
    path = tmp_path / "cc_broken.py"
    path.write_text(text)
    with pytest.raises(BadModelFile, match=expected):
        load_custom_code([str(path)])


def test_cli_missing_code_exits_2_without_traceback(tmp_path, capsys):
    model = tmp_path / "model.keras"
    model.write_bytes(b"not read")
    assert cli.main(["convert", str(model), "-o", str(tmp_path / "out"), "--custom-code", str(tmp_path / "nope.py")]) == 2
    err = capsys.readouterr().err
    assert "nope.py: no such file" in err and "Traceback" not in err
    assert cli.main(["inspect", str(model), "--custom-code", "no_such_module_tf2torch"]) == 2
    assert "cannot import it" in capsys.readouterr().err


def test_a_lambda_function_saved_by_name_comes_from_the_custom_code(keras, tmp_path, capsys):
    # Keras saves a named (not inline) Lambda function by its name only: the code defining it
    # is what --custom-code passes (keras.io's diffusion examples embed noise levels this way).
    path = _write(tmp_path, "cc_functions", """
        from keras import ops


        def sinusoidal_embedding(x):
            frequencies = ops.exp(ops.linspace(0.0, ops.log(1000.0), 4))
            return ops.concatenate([ops.sin(frequencies * x), ops.cos(frequencies * x)], axis=-1)
    """)
    sys.path.insert(0, str(tmp_path))
    try:
        import cc_functions
    finally:
        sys.path.remove(str(tmp_path))
    inp = keras.Input((3, 5, 1))
    embedded = keras.layers.Lambda(cc_functions.sinusoidal_embedding, output_shape=(3, 5, 8))(inp)
    model = keras.Model(inp, keras.layers.Conv2D(2, 3, padding="same")(embedded))
    saved = tmp_path / "embedding.keras"
    model.save(saved)
    sys.modules.pop("cc_functions", None)

    assert cli.main(["convert", str(saved), "-o", str(tmp_path / "refused"), "--allow-lambda", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "its function 'sinusoidal_embedding' is saved by name only" in err and "--custom-code" in err
    assert not (tmp_path / "refused").exists()

    out = tmp_path / "out"
    assert cli.main(["convert", str(saved), "-o", str(out), "--allow-lambda", "--custom-code", str(path), "--verify",
                     "--quiet"]) == 0
    assert "torch.sin" in (out / "model.py").read_text()
    sys.modules.pop("cc_functions", None)
