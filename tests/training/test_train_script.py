"""The generated train.py: standalone, same history and weights as Keras' fit(), checkpoints
and resume, torchrun data parallel == one process with the same global batch."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file
from training_helpers import RTOL

import tf2torch

EPOCHS = 2
BATCH = 8
SAMPLES = 52  # 41 train + 11 validation: the last training batch holds 1 sample (an empty shard
# for one of two torchrun processes)


def compiled_mlp() -> keras.Model:
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6,), name="features")
    x = keras.layers.Dense(10, activation="relu", name="hidden", kernel_regularizer=keras.regularizers.L2(0.01))(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="fit_mlp")
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(keras model, output dir with model.py / train.py, data.npz), before any training."""
    root = tmp_path_factory.mktemp("train_script")
    model = compiled_mlp()
    model.save(root / "mlp.keras")
    out = tf2torch.convert(root / "mlp.keras").save(root / "out")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=(SAMPLES,)).astype(np.int64)
    np.savez(root / "data.npz", x=x, y=y)
    return model, out, root / "data.npz"


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def train_cmd(out: Path, data: Path, checkpoints: str, *extra: str, epochs: int = EPOCHS, shuffle: bool = False,
              batch: int = BATCH) -> list[str]:
    return [sys.executable, str(out / "train.py"), "--data", str(data), "--epochs", str(epochs), "--batch-size",
            str(batch), "--validation-split", "0.2", *([] if shuffle else ["--no-shuffle"]), "--checkpoint-dir",
            checkpoints, *extra]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return imported | {node.module.split(".")[0] for node in ast.walk(tree)
                       if isinstance(node, ast.ImportFrom) and node.module}


def test_train_py_is_standalone(converted):
    """train.py needs model.py, train_utils.py (written next to it, the same text for every
    model), torch, numpy and safetensors; both are ruff-clean, also with import sorting."""
    _, out, _ = converted
    libraries = {"__future__", "argparse", "importlib", "json", "math", "os", "sys", "time", "collections",
                 "pathlib", "numpy", "torch", "safetensors"}
    assert imported_modules(out / "train.py") <= libraries | {"model", "train_utils"}
    assert imported_modules(out / "train_utils.py") <= libraries
    utils = Path(tf2torch.__file__).parent / "training" / "train_utils.py"
    assert (out / "train_utils.py").read_bytes() == utils.read_bytes()
    # Keras' SGD at a constant learning rate is torch's own: no Keras optimizer class is copied in.
    script = (out / "train.py").read_text()
    assert "torch.optim.SGD(params, lr=0.05, momentum=0.9)" in script and "class KerasOptimizer" not in script
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        for rules in ([], ["--select", "E,F,W,I", "--line-length", "120"]):
            lint = subprocess.run([str(ruff), "check", "--isolated", *rules, str(out / "train.py"),
                                   str(out / "train_utils.py")], capture_output=True, text=True, check=False)
            assert lint.returncode == 0, lint.stdout


@pytest.fixture(scope="module")
def single_run(converted, tmp_path_factory):
    """One train.py run in one process: (its checkpoint directory, its stdout)."""
    _, out, data = converted
    root = tmp_path_factory.mktemp("single_run")
    stdout = run(train_cmd(out, data, str(root / "ckpt")), cwd=root)
    return root / "ckpt", stdout


def test_train_py_matches_keras_fit(converted, single_run, tmp_path):
    model, _, data = converted
    ckpt, stdout = single_run
    assert "Epoch 2/2" in stdout and "val_accuracy" in stdout
    with np.load(data) as arrays:
        history = model.fit(arrays["x"], arrays["y"], batch_size=BATCH, epochs=EPOCHS, validation_split=0.2,
                            shuffle=False, verbose=0).history
    ours = json.loads((ckpt / "history.json").read_text())
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(ours[key], history[key], rtol=RTOL, err_msg=key)
    model.save(tmp_path / "fitted.keras")
    expected = tf2torch.convert(tmp_path / "fitted.keras").state_dict
    final = load_file(str(ckpt / "final.safetensors"))
    for name, value in expected.items():
        np.testing.assert_allclose(final[name], value, rtol=RTOL, atol=1e-6, err_msg=name)


def torchrun(processes: int, command: list[str]) -> list[str]:
    """`command` (a train.py run) under torchrun with `processes` processes."""
    launcher = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert launcher is not None
    return [launcher, "--standalone", f"--nproc_per_node={processes}", *command[1:]]


def run_retrying(command: list[str], cwd: Path) -> str:
    """gloo rendezvous on a loaded 2-core machine occasionally aborts at start-up or shutdown:
    relaunch once (results are still checked exactly)."""
    try:
        return run(command, cwd)
    except AssertionError:
        return run(command, cwd)


def same_run(first: Path, second: Path) -> None:
    """Bit for bit the same final weights and history."""
    expected, actual = load_file(str(first / "final.safetensors")), load_file(str(second / "final.safetensors"))
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    assert json.loads((second / "history.json").read_text()) == json.loads((first / "history.json").read_text())


def resume_from_epoch_1(full: Path, parts: Path) -> None:
    """Set up `parts` as if a run had stopped after epoch 1 of the run in `full`."""
    shutil.copytree(full / "epoch_1", parts / "last")
    history = json.loads((full / "history.json").read_text())
    (parts / "history.json").write_text(json.dumps({k: v[:1] for k, v in history.items()}))


def test_resume_equals_one_run(converted, single_run, tmp_path):
    """Resume the one-process run from its epoch-1 checkpoint: bit for bit the same run."""
    _, out, data = converted
    resume_from_epoch_1(single_run[0], tmp_path / "parts")
    run(train_cmd(out, data, str(tmp_path / "parts"), "--quiet", "--resume"), cwd=tmp_path)
    same_run(single_run[0], tmp_path / "parts")


@pytest.mark.parametrize("processes", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_resume_with_shuffling_equals_one_run(converted, processes, tmp_path):
    """The shuffle generator's state travels in the checkpoint: the resumed epoch draws the
    order the uninterrupted run drew (not epoch 1's again)."""
    _, out, data = converted

    def launch(checkpoints: str, *extra: str) -> None:
        command = train_cmd(out, data, checkpoints, "--quiet", "--seed", "7", *extra, shuffle=True)
        run_retrying(command if processes == 1 else torchrun(processes, command), cwd=tmp_path)

    launch("full")
    resume_from_epoch_1(tmp_path / "full", tmp_path / "parts")
    launch("parts", "--resume")
    same_run(tmp_path / "full", tmp_path / "parts")


def test_torchrun_two_processes_equal_one(converted, single_run, tmp_path):
    """Two processes, the last batch of 1 sample (one shard empty) == one process."""
    _, out, data = converted
    run_retrying(torchrun(2, train_cmd(out, data, "ddp", "--quiet")), cwd=tmp_path)
    single = load_file(str(single_run[0] / "final.safetensors"))
    ddp = load_file(str(tmp_path / "ddp" / "final.safetensors"))
    for name in single:
        np.testing.assert_allclose(ddp[name], single[name], rtol=1e-5, atol=1e-6, err_msg=name)
    single_history = json.loads((single_run[0] / "history.json").read_text())
    ddp_history = json.loads((tmp_path / "ddp" / "history.json").read_text())
    for key in single_history:
        np.testing.assert_allclose(ddp_history[key], single_history[key], rtol=1e-5, err_msg=key)


# The last training batch's size for each batch size (41 training samples). Under torchrun its
# shards are short, and empty when it is smaller than the process count.
REMAINDERS = {0: 41, 1: 10, 2: 13, 3: 19, 4: 37, 5: 9}


@pytest.mark.slow
@pytest.mark.parametrize(("processes", "remainder"), [(p, r) for p in (2, 3) for r in REMAINDERS if r <= p + 2])
def test_torchrun_last_batch_remainders(converted, processes, remainder, tmp_path):
    """Every remainder of the last batch, with shuffling: torchrun == one process (weights and
    history), each process's loss weighted by its share of the global batch. (The default run
    covers the empty shard in test_torchrun_two_processes_equal_one.)"""
    _, out, data = converted
    batch = REMAINDERS[remainder]
    assert 41 % batch == remainder
    run(train_cmd(out, data, "single", "--quiet", shuffle=True, batch=batch), cwd=tmp_path)
    run_retrying(torchrun(processes, train_cmd(out, data, "ddp", "--quiet", shuffle=True, batch=batch)), cwd=tmp_path)
    expected = load_file(str(tmp_path / "single" / "final.safetensors"))
    actual = load_file(str(tmp_path / "ddp" / "final.safetensors"))
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    single_history = json.loads((tmp_path / "single" / "history.json").read_text())
    ddp_history = json.loads((tmp_path / "ddp" / "history.json").read_text())
    for key in single_history:
        np.testing.assert_allclose(ddp_history[key], single_history[key], rtol=1e-5, err_msg=key)


def test_train_py_docstring_shows_the_compile_config_as_written(tmp_path):
    """Learning rates as the user wrote them (Keras saves float32 noise), nothing truncated."""
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="probs")(inputs))
    model.compile(optimizer=keras.optimizers.AdamW(0.01, weight_decay=0.002, beta_1=0.85, beta_2=0.995,
                                                   epsilon=1e-6, amsgrad=True, clipnorm=0.7, use_ema=True),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(tmp_path / "m.keras")
    script = (tf2torch.convert(tmp_path / "m.keras").save(tmp_path / "out") / "train.py").read_text()
    docstring = ast.get_docstring(ast.parse(script))
    assert "learning_rate=0.01," in docstring and "0.00999" not in script
    optimizer = " ".join(docstring.split("Optimizer:")[1].split("Loss:")[0].split())
    assert optimizer.startswith("AdamW(") and optimizer.endswith("amsgrad=True)"), optimizer
    for written in ("weight_decay=0.002", "beta_1=0.85", "beta_2=0.995", "epsilon=1e-06", "amsgrad=True",
                    "clipnorm=0.7", "use_ema=True"):
        assert written in docstring, written


def cnn_adam_schedule(batchnorm: bool = False) -> keras.Model:
    keras.utils.set_random_seed(6)
    inputs = keras.Input((7, 9, 2), name="image")
    # No bias before BatchNorm: its gradient is rounding noise, which Adam scales up to full steps.
    x = keras.layers.Conv2D(4, 3, use_bias=not batchnorm, name="conv")(inputs)
    if batchnorm:
        x = keras.layers.BatchNormalization(momentum=0.8, epsilon=0.01, name="bn")(x)
    x = keras.layers.Activation("relu", name="relu")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="cnn")
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=3, decay_rate=0.8)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def lstm_adamw_clipnorm() -> keras.Model:
    keras.utils.set_random_seed(7)
    inputs = keras.Input((6,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(9, 4, mask_zero=True, name="embedding")(inputs)
    x = keras.layers.LSTM(5, name="lstm")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="lstm")
    model.compile(optimizer=keras.optimizers.AdamW(0.02, weight_decay=0.01, clipnorm=0.1),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def mlp_adam_ema() -> keras.Model:
    keras.utils.set_random_seed(8)
    inputs = keras.Input((6,), name="features")
    x = keras.layers.Dense(10, activation="tanh", name="hidden")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="mlp_ema")
    model.compile(optimizer=keras.optimizers.Adam(0.02, use_ema=True, ema_momentum=0.8, ema_overwrite_frequency=4),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def dense_rmsprop() -> keras.Model:
    keras.utils.set_random_seed(9)
    inputs = keras.Input((6,), name="features")
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(inputs), name="rms")
    model.compile(optimizer=keras.optimizers.RMSprop(0.01, momentum=0.5), loss="categorical_crossentropy",
                  metrics=["mae"])
    return model


def model_inputs(name: str, rng: np.random.Generator) -> np.ndarray:
    if name.startswith("cnn"):
        return rng.normal(size=(SAMPLES, 7, 9, 2)).astype(np.float32)
    if name.startswith("mlp"):
        return rng.normal(size=(SAMPLES, 6)).astype(np.float32)
    tokens = rng.integers(1, 9, size=(SAMPLES, 6))
    tokens[np.arange(6)[None, :] >= rng.integers(1, 7, size=SAMPLES)[:, None]] = 0  # right padding
    return tokens.astype(np.int32)


FIT_MODELS = {"cnn_bn_adam_schedule": lambda: cnn_adam_schedule(batchnorm=True),
              "lstm_adamw_clipnorm": lstm_adamw_clipnorm, "mlp_adam_ema": mlp_adam_ema}

# What each model's train.py must contain, and code for features its compile config does not use.
SCRIPT_FEATURES = {
    "mlp_sgd": (compiled_mlp, ["torch.optim.SGD(params, lr=0.05, momentum=0.9)", "def weight_penalty"],
                ["class Keras", "clip", "schedule", ".sparse", "is_sparse", "gather_embedding", "Callable", "permute"]),
    "cnn_bn_adam_schedule": (lambda: cnn_adam_schedule(batchnorm=True),
                             ["class KerasAdam(", "class ExponentialDecay", "self.schedule(step)", "permute",
                              ("Optimizer: Adam(learning_rate=ExponentialDecay(initial_learning_rate=0.01, "
                              "decay_steps=3, decay_rate=0.8))")],
                          ["KerasOptimizer", "clip", "weight_decay", ".sparse", "is_sparse", "gather_embedding", "weight_penalty",
                           "amsgrad", "use_ema"]),
    "lstm_adamw_clipnorm": (lstm_adamw_clipnorm, ["class KerasAdamW(", "def clip_gradients",
                                                  "Optimizer: AdamW(learning_rate=0.02, weight_decay=0.01, clipnorm=0.1)",
                                                  "model.embedding.sparse = True", "gather_embedding_gradients(model)"],
                            ["KerasOptimizer", "schedule", "global_clipnorm", "clipvalue", "weight_penalty",
                             "amsgrad", "use_ema", "permute"]),
    # EMA: the Keras-exact Adam, which keeps the averages; fit() ends with the weights := averages
    "mlp_adam_ema": (mlp_adam_ema, ["class KerasAdam(KerasOptimizer)", "def update_ema",
                                    "optimizer.finalize_variable_values()", "use_ema=True"],
                     ["gather_embedding", "weight_penalty", "permute", ".sparse = True"]),
    # An optimizer without a short class of its own: the Keras-exact one with its base class
    "dense_rmsprop": (dense_rmsprop, ["class KerasRMSprop(KerasOptimizer)", "def mean_absolute_error"],
                      ["optimizer.finalize_variable_values()", "gather_embedding", "weight_penalty", "permute",
                       ".sparse = True"]),
}


@pytest.mark.parametrize("name", list(SCRIPT_FEATURES))
def test_train_py_has_only_what_the_compile_config_uses(name, tmp_path):
    """An explicit PyTorch loop (DataLoader, backward, clip, step), ruff-clean, with the code of
    the model's own optimizer, schedule, clipping and penalties and nothing else."""
    build, present, absent = SCRIPT_FEATURES[name]
    build().save(tmp_path / "m.keras")
    script_path = tf2torch.convert(tmp_path / "m.keras").save(tmp_path / "out") / "train.py"
    script = script_path.read_text()
    flat = " ".join(script.split())  # the docstring wraps the compile config
    for text in ["data_loaders(args, INPUT_PERMS, generator, rank, world)", "(loss * share).backward()",
                 "optimizer.step()", *present]:
        assert text in flat, text
    code = script.split('"""', 2)[2]  # the docstring shows the whole compile config
    for text in ["build_training", "class Training", "train_step", *absent]:
        assert text not in code, text
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        lint = subprocess.run([str(ruff), "check", "--isolated", str(script_path)], capture_output=True, text=True,
                              check=False)
        assert lint.returncode == 0, lint.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FIT_MODELS))
def test_train_py_per_model_matches_keras_fit(name, tmp_path):
    """train.py is ruff-clean and reproduces fit() over 2 epochs (validation and a partial last
    batch included) for a CNN + BatchNorm with Adam and a schedule, and Embedding + LSTM with
    AdamW + clipnorm."""
    model = FIT_MODELS[name]()
    model.save(tmp_path / f"{name}.keras")
    out = tf2torch.convert(tmp_path / f"{name}.keras").save(tmp_path / "out")
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        lint = subprocess.run([str(ruff), "check", "--isolated", str(out / "train.py")], capture_output=True, text=True,
                              check=False)
        assert lint.returncode == 0, lint.stdout
    rng = np.random.default_rng(1)
    x, y = model_inputs(name, rng), rng.integers(0, 3, size=(SAMPLES,)).astype(np.int64)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    run(train_cmd(out, tmp_path / "data.npz", str(tmp_path / "ckpt"), "--quiet"), cwd=tmp_path)
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, validation_split=0.2, shuffle=False, verbose=0).history
    ours = json.loads((tmp_path / "ckpt" / "history.json").read_text())
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(ours[key], history[key], rtol=RTOL, err_msg=key)
    model.save(tmp_path / "fitted.keras")
    final = load_file(str(tmp_path / "ckpt" / "final.safetensors"))
    for weight, value in tf2torch.convert(tmp_path / "fitted.keras").state_dict.items():
        if value.dtype.kind == "f":  # not BatchNorm's num_batches_tracked, which Keras has not
            np.testing.assert_allclose(final[weight], value, rtol=RTOL, atol=1e-6, err_msg=weight)


def test_cli_mentions_train_py(converted, tmp_path, capsys):
    from tf2torch.cli import main

    model, _, _ = converted
    model.save(tmp_path / "m.keras")
    assert main(["convert", str(tmp_path / "m.keras"), "-o", str(tmp_path / "o")]) == 0
    assert "train.py" in capsys.readouterr().out
    assert (tmp_path / "o" / "train.py").exists()


def tf_keras_mlp_adam_clipnorm(tf_keras):
    inputs = tf_keras.Input((6,), name="features")
    x = tf_keras.layers.Dense(10, activation="relu", name="hidden",
                              kernel_regularizer=tf_keras.regularizers.L2(0.01))(inputs)
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = tf_keras.Model(inputs, outputs)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01, clipnorm=0.5), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def tf_keras_embedding_lstm_adam(tf_keras):
    inputs = tf_keras.Input((6,), dtype="int32", name="tokens")
    x = tf_keras.layers.Embedding(9, 4, name="embedding")(inputs)
    x = tf_keras.layers.LSTM(5, name="lstm")(x)
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = tf_keras.Model(inputs, outputs)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.mark.parametrize("build", [tf_keras_mlp_adam_clipnorm,
                                   pytest.param(tf_keras_embedding_lstm_adam, marks=pytest.mark.slow)])
def test_tf_keras_h5_train_py_matches_fit(build, tmp_path):
    """A tf.keras 2 .h5 gets the explicit train.py, which reproduces fit() of the saved model as
    tf.keras loads it (its metrics see (batch, 1) targets: the saved `accuracy` is
    categorical_accuracy, compared with class 0 on integer labels, as tf.keras does)."""
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(3)
    build(tf_keras).save(tmp_path / "m.h5")
    out = tf2torch.convert(tmp_path / "m.h5").save(tmp_path / "out")
    script = (out / "train.py").read_text()
    assert "build_training" not in script and "(loss * share).backward()" in script
    assert "is_sparse" not in script  # tf.keras sums an Embedding's token rows: a dense gradient
    rng = np.random.default_rng(0)
    tokens = build is tf_keras_embedding_lstm_adam
    x = rng.integers(0, 9, size=(SAMPLES, 6)).astype(np.int32) if tokens else rng.normal(size=(SAMPLES, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=(SAMPLES,)).astype(np.int64)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    run(train_cmd(out, tmp_path / "data.npz", str(tmp_path / "ckpt"), "--quiet"), cwd=tmp_path)
    model = tf_keras.models.load_model(tmp_path / "m.h5")
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, validation_split=0.2, shuffle=False, verbose=0).history
    ours = json.loads((tmp_path / "ckpt" / "history.json").read_text())
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(ours[key], history[key], rtol=RTOL, err_msg=key)
    model.save(tmp_path / "fitted.h5")
    final = load_file(str(tmp_path / "ckpt" / "final.safetensors"))
    # Adam's steps are learning-rate sized whatever a gradient's size: the LSTM's near-zero ones
    # move a few weights by ~3e-6 through rounding (the generic script: 5e-6).
    for weight, value in tf2torch.convert(tmp_path / "fitted.h5").state_dict.items():
        np.testing.assert_allclose(final[weight], value, rtol=RTOL, atol=1e-5, err_msg=weight)
