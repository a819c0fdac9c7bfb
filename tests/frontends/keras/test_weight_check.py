"""Weights of recurrent and attention layers checked against their config (weight_check.py):
every weight of SimpleRNN / LSTM / GRU (both bias layouts, use_bias=False), Bidirectional,
RNN(StackedRNNCells), ConvLSTM2D, MultiHeadAttention (key_dim != value_dim, a key of its own width, output_shape),
Attention (scale, concat score weight) and AdditiveAttention, in a .keras archive and a
legacy .h5 file, is given the wrong shape, the wrong dtype or dropped: each is a
BadModelFile naming the layer and both shapes, and the untouched files still convert
exactly."""

from __future__ import annotations

import io
import random
import re
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import perturb_weights

SEED = 11


def _recurrent_model():
    import keras

    steps = keras.Input((7, 5), name="steps")
    x = keras.layers.LSTM(6, use_bias=False, return_sequences=True, name="lstm")(steps)
    x = keras.layers.GRU(4, reset_after=True, return_sequences=True, name="gru")(x)
    x = keras.layers.Bidirectional(keras.layers.SimpleRNN(3, return_sequences=True), name="bi")(x)
    x = keras.layers.RNN(keras.layers.StackedRNNCells([keras.layers.LSTMCell(3), keras.layers.GRUCell(2)]),
                         return_sequences=True, name="stacked")(x)
    x = keras.layers.GRU(3, reset_after=False, name="gru_v1")(x)
    frames = keras.Input((3, 5, 6, 2), name="frames")
    y = keras.layers.ConvLSTM2D(3, (3, 2), padding="same", name="conv_lstm")(frames)
    y = keras.layers.Flatten(name="flatten")(y)
    return keras.Model([steps, frames], keras.layers.Concatenate(name="joined")([x, y]), name="recurrent")


def _attention_model():
    import keras

    query = keras.Input((5, 8), name="query")
    value = keras.Input((7, 8), name="value")
    key = keras.Input((7, 6), name="key")
    mha = keras.layers.MultiHeadAttention(2, 3, value_dim=4, output_shape=5, name="mha")(query, value, key=key)
    dot = keras.layers.Attention(use_scale=True, score_mode="concat", name="dot")([query, value])
    additive = keras.layers.AdditiveAttention(name="additive")([query, value])
    out = keras.layers.Concatenate(name="joined")([mha, dot, additive])
    return keras.Model([query, value, key], out, name="attention")


CHECKED_LAYERS = {"lstm", "gru", "bi", "stacked", "gru_v1", "conv_lstm", "mha", "dot", "additive"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{(model, suffix): (path, live model)} for both models in both formats."""
    directory = tmp_path_factory.mktemp("weight-check")
    files = {}
    for build in (_recurrent_model, _attention_model):
        model = build()
        perturb_weights(model, SEED)
        for suffix in (".keras", ".h5"):
            path = directory / f"{model.name}{suffix}"
            model.save(str(path))
            files[model.name, suffix] = path, model
    return files


# -- where the weights are ----------------------------------------------------------------


def _keras_datasets(path: Path) -> list[tuple[str, str]]:
    """(layer name, dataset path in model.weights.h5) of the checked layers' weights."""
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as h5:
        found: list[str] = []
        h5.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    # layers/<snake_case class>[_N]/...: map back through the layer order of the config.
    groups = {"lstm": "lstm", "gru": "gru", "bi": "bidirectional", "stacked": "rnn", "gru_v1": "gru_1", "conv_lstm": "conv_lstm2d",
              "mha": "multi_head_attention", "dot": "attention", "additive": "additive_attention"}
    by_group = {group: layer for layer, group in groups.items()}
    return [(by_group[name.split("/")[1]], name) for name in found if name.split("/")[1] in by_group]


def _h5_datasets(path: Path) -> list[tuple[str, str]]:
    with h5py.File(path) as h5:
        weights = h5["model_weights"]
        return [(layer, f"model_weights/{layer}/{name.decode() if isinstance(name, bytes) else name}")
                for layer in CHECKED_LAYERS if layer in weights
                for name in weights[layer].attrs["weight_names"]]


def _edited(source: Path, target: Path, edit) -> Path:
    """A copy of `source` with `edit(h5)` applied to its weights file."""
    if source.suffix == ".h5":
        shutil.copy(source, target)
        with h5py.File(target, "r+") as h5:
            edit(h5)
        return target
    with zipfile.ZipFile(source) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(target, "w") as archive:
        for info, data in members:
            if info.filename == "model.weights.h5":
                buffer = io.BytesIO(data)
                with h5py.File(buffer, "r+") as h5:
                    edit(h5)
                data = buffer.getvalue()
            archive.writestr(info, data)
    return target


def _replace(path: str, value: np.ndarray):
    def edit(h5):
        del h5[path]
        h5[path] = value

    return edit


def _drop(path: str):
    """Remove one weight: from weight_names (.h5) or from its vars group (.keras)."""
    def edit(h5):
        del h5[path]
        if path.startswith("model_weights/"):
            layer = h5["/".join(path.split("/")[:2])]
            inner = path.split("/", 2)[2]
            names = [n for n in layer.attrs["weight_names"] if (n.decode() if isinstance(n, bytes) else n) != inner]
            layer.attrs["weight_names"] = names

    return edit


def _wrong_shape(shape: tuple[int, ...], rng: random.Random) -> tuple[int, ...]:
    if not shape:
        return (2,)
    axis = rng.randrange(len(shape))
    return shape[:axis] + (shape[axis] + rng.choice((1, 2)),) + shape[axis + 1:]


def _cases(files, rng: random.Random) -> list[tuple[str, str, str, str, str]]:
    """(model, suffix, layer, dataset, edit kind): every checked weight of every file once,
    with a seeded edit (wrong shape, wrong dtype, or dropped)."""
    cases = []
    for (model, suffix), (path, _) in sorted(files.items()):
        datasets = _keras_datasets(path) if suffix == ".keras" else _h5_datasets(path)
        cases += [(model, suffix, layer, dataset, rng.choice(("shape", "dtype", "count"))) for layer, dataset in datasets]
    return cases


def test_every_recurrent_and_attention_weight_is_checked(saved, tmp_path):
    import tf2torch
    from tf2torch.errors import BadModelFile

    rng = random.Random(SEED)
    cases = _cases(saved, rng)
    assert {layer for _, _, layer, _, _ in cases} == CHECKED_LAYERS
    assert len(cases) == 2 * 34  # 34 weights in each format
    assert {kind for *_, kind in cases} == {"shape", "dtype", "count"}
    for i, (model, suffix, layer, dataset, kind) in enumerate(cases):
        source, _ = saved[model, suffix]
        with h5py.File(io.BytesIO(zipfile.ZipFile(source).read("model.weights.h5")) if suffix == ".keras"
                       else source) as h5:
            original = np.asarray(h5[dataset][()])
        if kind == "shape":
            bad = _wrong_shape(original.shape, rng)
            edit, problem = _replace(dataset, np.ones(bad, np.float32)), rf"has shape \({', '.join(map(str, bad))},?\)"
        elif kind == "dtype":
            dtype = rng.choice(("int32", "bool", "S3"))
            edit, problem = _replace(dataset, np.zeros(original.shape, dtype)), "stored as|data type"
        else:
            # One fewer weight; in a flat .h5 list the next cell's weight may take its place.
            edit, problem = _drop(dataset), "holds \\d+ weights|has shape"
        path = _edited(source, tmp_path / f"case{i}{suffix}", edit)
        with pytest.raises(BadModelFile) as caught:
            tf2torch.convert(str(path))
        message = str(caught.value)
        where = f"{model}{suffix} {dataset} ({kind})"
        assert f"layer '{layer}' " in message or f"layer '{model}/{layer}' " in message, f"{where}: {message}"
        assert re.search(problem, message), f"{where}: {message}"
        if kind != "dtype":
            assert "its config implies" in message, f"{where}: {message}"


def test_shape_message_names_both_shapes(saved, tmp_path):
    import tf2torch
    from tf2torch.errors import BadModelFile

    source, _ = saved["recurrent", ".keras"]
    dataset = next(d for layer, d in _keras_datasets(source) if layer == "gru" and d.endswith("vars/2"))
    path = _edited(source, tmp_path / "gru.keras", _replace(dataset, np.ones((12,), np.float32)))
    with pytest.raises(BadModelFile, match=r"gru\.keras: layer 'gru' \(GRU\): weight #2 has shape \(12,\), "
                                           r"its config implies \(2, 12\)"):
        tf2torch.convert(str(path))


def test_float16_recurrent_weights_convert_with_a_warning(saved, tmp_path):
    import tf2torch

    source, _ = saved["recurrent", ".keras"]
    dataset = next(d for layer, d in _keras_datasets(source) if layer == "lstm")

    def to_half(h5):
        value = np.asarray(h5[dataset][()])
        _replace(dataset, value.astype(np.float16))(h5)

    path = _edited(source, tmp_path / "half.keras", to_half)
    with pytest.warns(UserWarning, match=r"layer 'lstm' \(LSTM\): weight #\d is stored as float16; converted"):
        tf2torch.convert(str(path))


def test_cli_exit_2_on_a_bad_attention_kernel(saved, tmp_path, capsys):
    from tf2torch import cli

    source, _ = saved["attention", ".h5"]
    dataset = next(d for layer, d in _h5_datasets(source) if layer == "mha" and "query" in d and "kernel" in d)
    path = _edited(source, tmp_path / "bad.h5", _replace(dataset, np.ones((8, 2, 4), np.float32)))
    out = tmp_path / "out"
    assert cli.main(["convert", str(path), "-o", str(out)]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "unexpected error" not in stderr, stderr
    assert "layer 'mha' (MultiHeadAttention): weight #0 has shape (8, 2, 4), its config implies (8, 2, 3)" in stderr
    assert not out.exists()


@pytest.mark.parametrize("model", ["recurrent", "attention"])
def test_valid_files_still_convert(saved, model):
    """Both files convert (the checks accept every valid shape); the .keras one also matches
    TensorFlow (the .h5 one holds the same weights)."""
    import tf2torch

    path, live = saved[model, ".keras"]
    report = tf2torch.convert(str(path)).verify(batch_size=2, keras_model=live, tolerance=1e-5)
    assert report.outputs, "verification compared nothing"
    assert report.ok, report.table()
    h5_path, _ = saved[model, ".h5"]
    h5_module = tf2torch.convert(str(h5_path)).module
    keras_module = tf2torch.convert(str(path)).module
    for name, tensor in keras_module.state_dict().items():
        assert np.array_equal(tensor.numpy(), h5_module.state_dict()[name].numpy()), name
