"""An Embedding's gradient as Keras on TensorFlow computes it: an IndexedSlices with one row per
token occurrence. Keras 3's Adam / AdamW / RMSprop / Adagrad square those rows before repeated
tokens are summed, and clipnorm / clipvalue / global_clipnorm (Keras 3 and tf.keras) measure the
raw rows. 25 steps of an Embedding(mask_zero=True) + LSTM classifier against Keras' own."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file
from test_train_script import run_retrying, torchrun, train_cmd
from training_helpers import run_parity

import tf2torch

STEPS = 25
BATCH = 6
VOCAB = 9  # few tokens: most batches repeat each of them several times
LENGTH = 7


def token_batches(steps: int = STEPS, batch: int = BATCH, seed: int = 3) -> list:
    """Right-padded sequences of varying length, one all-padding row in every other batch."""
    rng = np.random.default_rng(seed)
    out = []
    for step in range(steps):
        x = rng.integers(1, VOCAB, size=(batch, LENGTH))
        lengths = rng.integers(1, LENGTH + 1, size=batch)
        if step % 2:
            lengths[rng.integers(batch)] = 0
        x[np.arange(LENGTH)[None, :] >= lengths[:, None]] = 0
        out.append((x.astype(np.int32), rng.integers(0, 3, size=batch).astype(np.int64)))
    return out


def keras3_classifier(optimizer) -> keras.Model:
    keras.utils.set_random_seed(4)
    inputs = keras.Input((LENGTH,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB, 5, mask_zero=True, name="embedding")(inputs)
    x = keras.layers.LSTM(6, name="lstm")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


CLIPS = {"plain": {}, "clipnorm": {"clipnorm": 0.05}, "clipvalue": {"clipvalue": 0.004},
         "global_clipnorm": {"global_clipnorm": 0.1}}
KERAS3 = {
    "adam": lambda clip: keras.optimizers.Adam(0.02, **clip),
    "adamw": lambda clip: keras.optimizers.AdamW(0.02, weight_decay=0.05, **clip),
    "rmsprop": lambda clip: keras.optimizers.RMSprop(0.01, **clip),
    "adagrad": lambda clip: keras.optimizers.Adagrad(0.1, **clip),
}


def keras3_parity(optimizer: str, clip: str, tmp_path) -> None:
    model = keras3_classifier(KERAS3[optimizer](CLIPS[clip]))
    run_parity(model, token_batches(), tmp_path).check()


# (AdamW + clipnorm runs in the default run through train.py: test_train_script.py.)
@pytest.mark.parametrize(("optimizer", "clip"), [("rmsprop", "clipvalue"), ("adagrad", "global_clipnorm")])
def test_keras3_embedding_parity(optimizer, clip, tmp_path):
    keras3_parity(optimizer, clip, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("clip", list(CLIPS))
@pytest.mark.parametrize("optimizer", list(KERAS3))
def test_keras3_embedding_parity_grid(optimizer, clip, tmp_path):
    keras3_parity(optimizer, clip, tmp_path)


# Every other Keras 3 optimizer on the same model: each one's ops on an IndexedSlices (squares,
# absolute values, a second squared term in Adadelta) follow the rows as Keras does.
OTHERS = {
    "sgd_momentum_clipvalue": lambda: keras.optimizers.SGD(0.1, momentum=0.8, clipvalue=0.004),
    "adadelta": lambda: keras.optimizers.Adadelta(5.0),
    "adamax": lambda: keras.optimizers.Adamax(0.02),
    "nadam_clipnorm": lambda: keras.optimizers.Nadam(0.02, clipnorm=0.05),
    "lion": lambda: keras.optimizers.Lion(0.002),
    "ftrl": lambda: keras.optimizers.Ftrl(0.2, l2_shrinkage_regularization_strength=0.01),
}


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", list(OTHERS))
def test_keras3_embedding_parity_other_optimizers(optimizer, tmp_path):
    run_parity(keras3_classifier(OTHERS[optimizer]()), token_batches(), tmp_path).check()


# -- tf.keras 2: clipping sees the raw rows, the update their per-token sums ------------------


def tf_keras_parity(optimizer: str, clip: str, tmp_path) -> None:
    tf_keras = pytest.importorskip("tf_keras")
    optimizers = {
        "adam": lambda: tf_keras.optimizers.Adam(0.02, **CLIPS[clip]),
        "adamw": lambda: tf_keras.optimizers.AdamW(0.02, weight_decay=0.05, **CLIPS[clip]),
        "rmsprop": lambda: tf_keras.optimizers.RMSprop(0.01, **CLIPS[clip]),
        "adagrad": lambda: tf_keras.optimizers.Adagrad(0.1, **CLIPS[clip]),
    }
    tf_keras.utils.set_random_seed(4)
    inputs = tf_keras.Input((LENGTH,), dtype="int32", name="tokens")
    x = tf_keras.layers.Embedding(VOCAB, 5, mask_zero=True, name="embedding")(inputs)
    x = tf_keras.layers.LSTM(6, name="lstm")(x)
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = tf_keras.Model(inputs, outputs)
    model.compile(optimizer=optimizers[optimizer](), loss="sparse_categorical_crossentropy")
    run_parity(model, token_batches(), tmp_path, suffix=".h5").check()


@pytest.mark.parametrize(("optimizer", "clip"), [("adam", "clipnorm")])
def test_tf_keras_embedding_parity(optimizer, clip, tmp_path):
    tf_keras_parity(optimizer, clip, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("clip", list(CLIPS))
@pytest.mark.parametrize("optimizer", list(KERAS3))
def test_tf_keras_embedding_parity_grid(optimizer, clip, tmp_path):
    tf_keras_parity(optimizer, clip, tmp_path)


# -- torchrun: the token rows of every process, in the global batch's order -------------------


@pytest.mark.slow
def test_torchrun_keeps_token_rows(tmp_path):
    """DistributedDataParallel would sum repeated tokens' rows; train.py gathers them instead:
    3 processes (the last batch of 2 leaves one shard empty) == one process."""
    model = keras3_classifier(KERAS3["adam"](CLIPS["clipnorm"]))
    model.save(tmp_path / "tokens.keras")
    out = tf2torch.convert(tmp_path / "tokens.keras").save(tmp_path / "out")
    batches = token_batches(steps=5, batch=6)
    x = np.concatenate([b[0] for b in batches])[:29]
    y = np.concatenate([b[1] for b in batches])[:29]
    np.savez(tmp_path / "tokens.npz", x=x, y=y)  # 23 training samples in batches of 7: 2 left
    for name, launch in (("single", lambda c: c), ("ddp", lambda c: torchrun(3, c))):
        command = train_cmd(out, tmp_path / "tokens.npz", name, "--quiet", shuffle=True, batch=7)
        run_retrying(launch(command), cwd=tmp_path)
    expected, actual = load_file(str(tmp_path / "single" / "final.safetensors")), load_file(
        str(tmp_path / "ddp" / "final.safetensors"))
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
