"""Whole sequence models with None steps: one model.py for batch 1 and 7, lengths 5 and 23."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tf2torch
from conftest import perturb_weights

VOCAB = 50


def _text_classifier(keras):
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB, 16, mask_zero=True)(inp)
    x = keras.layers.LSTM(24)(x)
    x = keras.layers.Dropout(0.3)(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x), name="lstm_classifier")


def _bigru_tagger(keras):
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB, 12, mask_zero=True)(inp)
    x = keras.layers.Bidirectional(keras.layers.GRU(10, return_sequences=True))(x)
    return keras.Model(inp, keras.layers.Dense(5)(x), name="bigru_tagger")


def _float_seq2seq(keras):
    inp = keras.Input((None, 4), name="signal")
    x = keras.layers.GRU(8, return_sequences=True, reset_after=False)(inp)
    x = keras.layers.SimpleRNN(6, return_sequences=True)(x)
    return keras.Model(inp, keras.layers.Dense(2)(x), name="seq2seq")


MODELS = {"lstm_classifier": _text_classifier, "bigru_tagger": _bigru_tagger, "float_seq2seq": _float_seq2seq}


@pytest.fixture(scope="module", params=list(MODELS))
def converted(request, tmp_path_factory):
    import keras

    model = MODELS[request.param](keras)
    perturb_weights(model)
    path = tmp_path_factory.mktemp("seq") / f"{request.param}.keras"
    model.save(path)
    return model, tf2torch.convert(str(path))


def _inputs(model, batch, steps, seed):
    rng = np.random.default_rng(seed)
    if model.inputs[0].dtype == "int32":
        ids = rng.integers(1, VOCAB, (batch, steps)).astype(np.int32)
        lengths = rng.integers(1, steps + 1, batch)
        ids[np.arange(steps)[None, :] >= lengths[:, None]] = 0  # right padding of varying length
        return ids
    return rng.standard_normal((batch, steps, 4)).astype(np.float32)


@pytest.mark.parametrize("batch,steps", [(1, 5), (7, 5), (1, 23), (7, 23)], ids=lambda v: str(v))
def test_one_model_py_for_every_batch_and_length(converted, batch, steps):
    model, result = converted
    x = _inputs(model, batch, steps, batch * 100 + steps)
    report = result.verify([x], keras_model=model)
    assert report.ok, report.table()


def test_sequence_io_layout_stays_batch_steps_features(converted):
    model, result = converted
    x = _inputs(model, 2, 9, 0)
    out = result.module(torch.from_numpy(x))
    expected = np.asarray(model(x))
    assert tuple(out.shape) == expected.shape
    assert result.graph.inputs[0].perm is None and result.graph.outputs[0].perm is None


def test_generated_code_with_every_recurrent_helper_is_lint_clean_and_standalone(keras, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    inp = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 5, mask_zero=True)(inp)
    x = keras.layers.LSTM(4, return_sequences=True, activation="linear", recurrent_activation="hard_sigmoid")(x)
    x = keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True))(x)
    x = keras.layers.SimpleRNN(3, return_sequences=True)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    frames = keras.Input((3, 5, 5, 2))
    y = keras.layers.ConvLSTM2D(2, 3, activation="elu")(frames)
    model = keras.Model([inp, frames], [x, y])
    model.save(tmp_path / "m.keras")
    result = tf2torch.convert(str(tmp_path / "m.keras"))
    result.save(tmp_path / "out")
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed")
    done = subprocess.run([str(ruff), "check", "--isolated", str(tmp_path / "out" / "model.py")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
    imports = [line for line in result.source_code.splitlines() if line.startswith(("import ", "from "))]
    assert not any("tf2torch" in line for line in imports)
