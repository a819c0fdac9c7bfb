"""Multi-output models, loss weights, per-output and weighted metrics, sample weights and the
"none" / "sum" loss reductions: N steps of Keras' train_on_batch (TF backend) vs N steps of
`Training.train_step` on the converted module, from the same weights and batches. Same loss
curve, weights within 1e-4 relative, and the last step's metrics (Keras resets them at every
train_on_batch) under the names Keras reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pytest
import torch
from training_helpers import RTOL, compare_weights

import tf2torch
from tf2torch.training.compile_config import UnsupportedTraining

STEPS = 10
BATCH = 5
IMAGE = (7, 9, 3)


def heads(outputs: str = "list", seg: bool = False, regularize: bool = False) -> keras.Model:
    """A conv trunk with a softmax head `cls`, a linear head `reg` and optionally a 1x1-conv
    head `seg` (a rank-4 output: NCHW in torch)."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input(IMAGE, name="image")
    conv = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    flat = keras.layers.Flatten(name="flat")(conv)
    hidden = keras.layers.Dense(6, activation="tanh", name="hidden",
                                kernel_regularizer=keras.regularizers.L2(0.01) if regularize else None)(flat)
    cls = keras.layers.Dense(4, activation="softmax", name="cls")(hidden)
    reg = keras.layers.Dense(3, name="reg")(hidden)
    named = {"cls": cls, "reg": reg}
    if seg:
        named["seg"] = keras.layers.Conv2D(2, 1, name="seg")(conv)
    if outputs == "dict":  # insertion order differs from Keras' sorted flat order
        return keras.Model(inputs, {k: named[k] for k in reversed(list(named))}, name="dict_heads")
    return keras.Model(inputs, [named[k] for k in ("cls", "seg", "reg") if k in named], name="heads")


def single_head() -> keras.Model:
    keras.utils.set_random_seed(7)
    inputs = keras.Input((6,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="cls")(hidden), name="single")


def targets(name: str, rng: np.random.Generator) -> np.ndarray:
    if name == "cls":
        return np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=BATCH)]
    if name == "seg":
        return rng.normal(size=(BATCH, 5, 7, 2)).astype(np.float32)
    return rng.normal(size=(BATCH, 3)).astype(np.float32)


@dataclass
class Case:
    compile: dict[str, Any]
    outputs: str = "list"  # "list", "dict" or "single"
    seg: bool = False
    weights: str | None = None  # None, "shared" (one array) or "per_output"
    # Adam turns float noise in near-zero gradients into visible steps; where only one head
    # trains the trunk, SGD keeps the comparison about the losses.
    sgd: bool = False


CASES = {
    "list_losses": Case({"loss": ["categorical_crossentropy", "mse"], "metrics": [["accuracy"], ["mae"]]}),
    "dict_losses_weights_auc": Case({
        "loss": {"reg": keras.losses.Huber(), "cls": keras.losses.CategoricalCrossentropy(label_smoothing=0.1)},
        "loss_weights": {"cls": 0.6, "reg": 2.5},
        "metrics": {"cls": ["accuracy", keras.metrics.AUC(), "accuracy"], "reg": [keras.metrics.MeanAbsoluteError()]}}),
    "list_loss_weights_nchw_output": Case({
        "loss": ["categorical_crossentropy", keras.losses.MeanAbsoluteError(), "mse"], "loss_weights": [0.7, 0.3, 1.9],
        "metrics": [["categorical_accuracy"], ["mse"], []]}, seg=True),
    "one_loss_for_every_output": Case({"loss": "mse", "metrics": ["mae", ["mse", "mae"]]}),
    "output_without_loss": Case({"loss": ["categorical_crossentropy", None], "metrics": [["accuracy"], ["mse"]]},
                                sgd=True),
    "dict_outputs": Case({
        "loss": {"cls": "categorical_crossentropy", "reg": "mse", "seg": "mae"},
        "loss_weights": {"cls": 1.5, "reg": 0.5, "seg": 0.25},
        "metrics": {"cls": ["accuracy"], "seg": ["mse"]}}, outputs="dict", seg=True),
    "sample_weight_weighted_metrics": Case({
        "loss": ["categorical_crossentropy", "mse"], "loss_weights": [1.0, 0.4],
        "metrics": {"cls": ["accuracy"], "reg": ["mae"]},
        "weighted_metrics": {"cls": ["accuracy", "categorical_accuracy"], "reg": ["mse", "mae"]}}, weights="shared"),
    "sample_weight_per_output": Case({
        "loss": ["categorical_crossentropy", keras.losses.MeanAbsoluteError(reduction="sum"), "mse"],
        "weighted_metrics": [["accuracy"], ["mse"], ["mae"]]}, seg=True, weights="per_output"),
    "reduction_none": Case({
        "loss": [keras.losses.CategoricalCrossentropy(reduction="none"), keras.losses.MeanSquaredError(reduction="none")],
        "metrics": [["accuracy"], ["mae"]]}),
    "reduction_none_sample_weight_mixed": Case({
        "loss": [keras.losses.CategoricalCrossentropy(reduction="none"), "mse"], "loss_weights": [0.5, 2.0],
        "weighted_metrics": [["accuracy"], ["mse"]]}, weights="shared"),
    "reduction_sum": Case({
        "loss": [keras.losses.CategoricalCrossentropy(reduction="sum"), keras.losses.MeanSquaredError(reduction="sum")],
        "loss_weights": [0.1, 0.05], "metrics": [["accuracy"], ["mae"]]}, weights="shared"),
    "single_output_reduction_none": Case({
        "loss": keras.losses.CategoricalCrossentropy(reduction="none"), "metrics": ["accuracy"]}, outputs="single"),
    "single_output_sample_weight_weighted_metrics": Case({
        "loss": "categorical_crossentropy", "loss_weights": 0.5, "metrics": ["accuracy"],
        "weighted_metrics": ["accuracy", keras.metrics.MeanSquaredError()]}, outputs="single", weights="shared"),
    "single_output_reduction_sum_sample_weight": Case({
        "loss": keras.losses.CategoricalCrossentropy(reduction="sum"), "weighted_metrics": ["categorical_accuracy"]},
        outputs="single", weights="shared"),
}


def data_for(model: keras.Model, case: Case, rng: np.random.Generator) -> list[tuple]:
    """Batches (x, y, sample_weight) with y and the weights as Keras takes them."""
    names = list(model.output_names) if case.outputs != "single" else ["cls"]
    out = []
    for _ in range(STEPS):
        shape = (6,) if case.outputs == "single" else IMAGE
        x = rng.normal(size=(BATCH, *shape)).astype(np.float32)
        ys = {name: targets(name, rng) for name in names}
        y = ys["cls"] if case.outputs == "single" else ys if case.outputs == "dict" else [ys[n] for n in names]
        w = None
        if case.weights == "shared":
            w = rng.uniform(0.0, 2.0, size=BATCH).astype(np.float32)
        elif case.weights == "per_output":
            w = []
            for name in names:
                shared = rng.uniform(0.0, 2.0, size=BATCH).astype(np.float32)
                # A per-element weight for the rank-4 output (its per-sample loss is (B, H, W)).
                w.append(np.repeat(np.repeat(shared[:, None, None], 5, 1), 7, 2) if name == "seg" else shared)
        out.append((x, y, w))
    return out


def as_torch(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: torch.from_numpy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [torch.from_numpy(v) for v in value]
    return torch.from_numpy(value)


def image_to_torch(x: np.ndarray, result: Any) -> torch.Tensor:
    perm = result.graph.inputs[0].perm
    return torch.from_numpy(np.ascontiguousarray(x if perm is None else np.transpose(x, perm)))


def run_case(case: Case, tmp_path, suffix: str = ".keras", model: Any = None):
    if model is None:
        model = single_head() if case.outputs == "single" else heads(case.outputs, case.seg)
        optimizer = keras.optimizers.SGD(0.05, momentum=0.9) if case.sgd else keras.optimizers.Adam(0.01)
        model.compile(optimizer=optimizer, **case.compile)
    path = tmp_path / f"start{suffix}"
    model.save(path)
    result = tf2torch.convert(path)
    training = result.training_setup()
    data = data_for(model, case, np.random.default_rng(11))
    keras_losses, torch_losses = [], []
    for x, y, w in data:
        training.reset_metrics()  # train_on_batch reports the metrics of its one batch
        loss = training.train_step([image_to_torch(x, result)], as_torch(y), sample_weight=as_torch(w))
        torch_losses.append(float(loss))
        logs = model.train_on_batch(x, y, sample_weight=w, return_dict=True)
        keras_losses.append(float(logs["loss"]))
    ours = {m.name: m.result() for m in training.reported_metrics}
    errors = compare_weights(model, result.module, tmp_path, suffix)
    return np.array(keras_losses), np.array(torch_losses), logs, ours, errors


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_multi_output_parity(name, tmp_path):
    keras_losses, torch_losses, keras_logs, ours, errors = run_case(CASES[name], tmp_path)
    np.testing.assert_allclose(torch_losses, keras_losses, rtol=RTOL, atol=1e-6)
    worst = max(errors.items(), key=lambda kv: kv[1])
    assert worst[1] < RTOL, f"weights differ after training: {worst}"
    expected = {k: v for k, v in keras_logs.items() if k != "loss"}
    assert sorted(ours) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(ours[key], value, rtol=RTOL, atol=1e-6, err_msg=key)


TF_KERAS_CASES = {
    "dict_losses_sum_weighted_metrics": (lambda k: {
        "loss": {"cls": "categorical_crossentropy", "reg": k.losses.MeanSquaredError(reduction="sum")},
        "loss_weights": {"cls": 0.7, "reg": 0.2}, "metrics": {"cls": ["accuracy"], "reg": ["mae"]},
        "weighted_metrics": {"cls": ["accuracy"], "reg": ["mse"]}}, "shared", 0.05),
    "list_losses_none_flat_metrics": (lambda k: {
        "loss": [k.losses.CategoricalCrossentropy(reduction="none"), k.losses.MeanSquaredError(reduction="none")],
        "loss_weights": [1.5, 0.5],
        "metrics": ["mae"]}, None, 0.01),  # the summed per-sample losses make larger steps
    "output_without_loss": (lambda k: {"loss": [None, "mse"], "metrics": [["accuracy"], []]}, "shared", 0.05),
}


@pytest.mark.parametrize("name", list(TF_KERAS_CASES), ids=list(TF_KERAS_CASES))
def test_tf_keras_h5_multi_output(name, tmp_path):
    """tf.keras 2 stores resolved per-output metric lists with their names, broadcasts a flat
    metric list to every output and reports "<output>_loss" for every output with a loss."""
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(2)
    inputs = tf_keras.Input(IMAGE, name="image")
    conv = tf_keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    hidden = tf_keras.layers.Dense(6, activation="tanh", name="hidden")(tf_keras.layers.Flatten(name="flat")(conv))
    cls = tf_keras.layers.Dense(4, activation="softmax", name="cls")(hidden)
    reg = tf_keras.layers.Dense(3, name="reg")(hidden)
    model = tf_keras.Model(inputs, [cls, reg])
    compile_args, weights, learning_rate = TF_KERAS_CASES[name]
    model.compile(optimizer=tf_keras.optimizers.SGD(learning_rate, momentum=0.9), **compile_args(tf_keras))
    keras_losses, torch_losses, keras_logs, ours, errors = run_case(Case({}, weights=weights), tmp_path, ".h5",
                                                                    model=model)
    np.testing.assert_allclose(torch_losses, keras_losses, rtol=RTOL, atol=1e-6)
    assert max(errors.values()) < RTOL, errors
    expected = {k: v for k, v in keras_logs.items() if k != "loss"}
    assert sorted(ours) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(ours[key], value, rtol=RTOL, atol=1e-6, err_msg=key)


def compiled_heads(tmp_path, regularize: bool = False, **compile_args) -> Any:
    model = heads(regularize=regularize)
    model.compile(optimizer="sgd", **compile_args)
    model.save(tmp_path / "m.keras")
    return tf2torch.convert(tmp_path / "m.keras")


def test_reduction_none_with_regularizer_is_a_clear_error(tmp_path):
    """Keras itself fails to add a per-sample loss to the scalar regularization losses."""
    result = compiled_heads(tmp_path, regularize=True, loss=[keras.losses.CategoricalCrossentropy(reduction="none"),
                                                              "mse"])
    with pytest.raises(UnsupportedTraining, match="reduction='none' together with regularization"):
        result.training_setup()


def test_weighted_auc_is_a_clear_error(tmp_path):
    result = compiled_heads(tmp_path, loss=["categorical_crossentropy", "mse"],
                            weighted_metrics={"cls": [keras.metrics.AUC()]})
    with pytest.raises(UnsupportedTraining, match="weighted_metrics: AUC with sample weights"):
        result.training_setup()


def test_metrics_not_matching_the_outputs_is_a_clear_error(tmp_path):
    """Keras refuses a flat metric list whose length is not the number of outputs, too."""
    result = compiled_heads(tmp_path, loss=["categorical_crossentropy", "mse"], metrics=["mae", "mse", "mae"])
    with pytest.raises(UnsupportedTraining, match="does not match the model's 2 outputs"):
        result.training_setup()


# -- the generated train.py on a multi-output .npz with sample weights -------------------------

SAMPLES, EPOCHS, FIT_BATCH = 30, 2, 8  # 24 train + 6 validation; the last batch is partial


def run_script(cmd: list[str], cwd, pythonpath: str = "") -> str:
    import os
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def script_cmd(out, checkpoints, *source: str) -> list[str]:
    import sys

    return [sys.executable, str(out / "train.py"), *source, "--epochs", str(EPOCHS), "--batch-size", str(FIT_BATCH),
            "--validation-split", "0.2", "--no-shuffle", "--checkpoint-dir", str(checkpoints)]


@pytest.fixture(scope="module")
def fitted_script(tmp_path_factory):
    """(keras model after fit, its history, converted output dir, data, the train.py run's checkpoints)."""
    root = tmp_path_factory.mktemp("multi_output_script")
    model = heads()
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss=["categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5], metrics=[["accuracy"], ["mae"]], weighted_metrics=[["accuracy"], []])
    model.save(root / "start.keras")
    out = tf2torch.convert(root / "start.keras").save(root / "out")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(SAMPLES, *IMAGE)).astype(np.float32)
    y_cls = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=SAMPLES)]
    y_reg = rng.normal(size=(SAMPLES, 3)).astype(np.float32)
    weights = rng.uniform(0.0, 2.0, size=SAMPLES).astype(np.float32)
    np.savez(root / "data.npz", x=x, y0=y_cls, y1=y_reg, sample_weight=weights)
    stdout = run_script(script_cmd(out, root / "ckpt", "--data", str(root / "data.npz")), cwd=root)
    history = model.fit(x, [y_cls, y_reg], sample_weight=weights, batch_size=FIT_BATCH, epochs=EPOCHS,
                        validation_split=0.2, shuffle=False, verbose=0).history
    return model, history, out, root, stdout


def test_train_py_multi_output_sample_weight_matches_fit(fitted_script, tmp_path):
    import json

    from safetensors.numpy import load_file

    model, history, _, root, stdout = fitted_script
    assert "cls_weighted_accuracy" in stdout and "val_reg_loss" in stdout
    ours = json.loads((root / "ckpt" / "history.json").read_text())
    assert sorted(ours) == sorted(history)
    for key in history:
        np.testing.assert_allclose(ours[key], history[key], rtol=RTOL, atol=1e-6, err_msg=key)
    model.save(tmp_path / "fitted.keras")
    expected = tf2torch.convert(tmp_path / "fitted.keras").state_dict
    final = load_file(str(root / "ckpt" / "final.safetensors"))
    for name, value in expected.items():
        np.testing.assert_allclose(final[name], value, rtol=RTOL, atol=1e-6, err_msg=name)


DATASET_MODULE = '''
import numpy as np
import torch

class WeightedPairs(torch.utils.data.Dataset):
    """Items (image in the torch layout, [y_cls, y_reg], sample weight)."""

    def __init__(self, path):
        with np.load(path) as data:
            self.x = torch.from_numpy(np.ascontiguousarray(data["x"].transpose(0, 3, 1, 2)))
            self.y = [torch.from_numpy(data["y0"]), torch.from_numpy(data["y1"])]
            self.w = torch.from_numpy(data["sample_weight"])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], [self.y[0][i], self.y[1][i]], self.w[i]


def make():
    return WeightedPairs({path!r})
'''


def test_train_py_dataset_with_sample_weights_equals_npz(fitted_script, tmp_path):
    """A Dataset whose items are (x, y, w) trains exactly as the .npz with sample_weight."""
    import json

    from safetensors.numpy import load_file

    _, _, out, root, _ = fitted_script
    (tmp_path / "weighted_pairs.py").write_text(DATASET_MODULE.format(path=str(root / "data.npz")))
    run_script([*script_cmd(out, tmp_path / "ckpt", "--dataset", "weighted_pairs:make"), "--quiet"], cwd=tmp_path,
               pythonpath=str(tmp_path))
    npz = load_file(str(root / "ckpt" / "final.safetensors"))
    dataset = load_file(str(tmp_path / "ckpt" / "final.safetensors"))
    for name in npz:
        np.testing.assert_allclose(dataset[name], npz[name], rtol=1e-6, atol=1e-7, err_msg=name)
    npz_history = json.loads((root / "ckpt" / "history.json").read_text())
    dataset_history = json.loads((tmp_path / "ckpt" / "history.json").read_text())
    assert sorted(dataset_history) == sorted(npz_history)
    for key, values in npz_history.items():
        np.testing.assert_allclose(dataset_history[key], values, rtol=1e-6, err_msg=key)


# -- sample weights on the loss and metric objects, against Keras' own ---------------------------

WEIGHTED_LOSSES = {
    "mse_per_sample_weight": (keras.losses.MeanSquaredError(), (5,)),
    "mse_column_weight": (keras.losses.MeanSquaredError(), (5, 1)),
    "mae_sum_per_step_weight": (keras.losses.MeanAbsoluteError(reduction="sum"), (5, 4)),
    "huber_none": (keras.losses.Huber(reduction="none"), (5,)),
    "cce_none_per_step_weight": (keras.losses.CategoricalCrossentropy(reduction="none"), (5, 4)),
    "cce_mean_with_sample_weight": (keras.losses.CategoricalCrossentropy(reduction="mean_with_sample_weight"), (5,)),
    "scce_ignore_class_weight": (keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1), (5, 4)),
    "scce_ignore_class_sum_weight": (
        keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1, reduction="sum"), (5, 4)),
}


def sequence_data(sparse: bool, rng: np.random.Generator, weight_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(batch 5, classes 6), or (batch 5, steps 4, classes 6) for per-step weights (the
    per-sample loss is then (5, 4))."""
    batch = (5, 4) if weight_shape == (5, 4) else (5,)
    logits = rng.normal(size=(*batch, 6)).astype(np.float32)
    if sparse:
        return rng.integers(0, 6, size=batch).astype(np.int64), logits
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return np.eye(6, dtype=np.float32)[rng.integers(0, 6, size=batch)], probs


@pytest.mark.parametrize("name", list(WEIGHTED_LOSSES), ids=list(WEIGHTED_LOSSES))
def test_weighted_loss_matches_keras(name):
    from tf2torch.training import losses as tl
    from tf2torch.training.compile_config import parse_loss

    keras_loss, weight_shape = WEIGHTED_LOSSES[name]
    rng = np.random.default_rng(len(name))
    y_true, y_pred = sequence_data(name.startswith("scce"), rng, weight_shape)
    weight = rng.uniform(0.0, 2.0, size=weight_shape).astype(np.float32)
    ours = eval(parse_loss(keras.saving.serialize_keras_object(keras_loss)).render(), vars(tl))
    expected = np.asarray(keras_loss(y_true, y_pred, sample_weight=weight))
    actual = ours(torch.from_numpy(y_true), torch.from_numpy(y_pred), torch.from_numpy(weight)).numpy()
    np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=1e-6)


WEIGHTED_METRICS = {
    "categorical_accuracy": (keras.metrics.CategoricalAccuracy(), (5,), False),
    "categorical_accuracy_per_step": (keras.metrics.CategoricalAccuracy(), (5, 4), False),
    "mse_per_sample": (keras.metrics.MeanSquaredError(), (5,), False),
    "mae_column": (keras.metrics.MeanAbsoluteError(), (5, 1), False),
    "sparse_categorical_accuracy": (keras.metrics.SparseCategoricalAccuracy(), (5,), True),
}


@pytest.mark.parametrize("name", list(WEIGHTED_METRICS), ids=list(WEIGHTED_METRICS))
def test_weighted_metric_matches_keras(name):
    """Two weighted batches: the weighted mean over everything seen."""
    from tf2torch.training import losses as tl
    from tf2torch.training import metrics as tm
    from tf2torch.training.compile_config import parse_metric

    keras_metric, weight_shape, sparse = WEIGHTED_METRICS[name]
    keras_metric.reset_state()
    ours = eval(parse_metric(keras.saving.serialize_keras_object(keras_metric)).render(), {**vars(tl), **vars(tm)})
    rng = np.random.default_rng(len(name))
    for _ in range(2):
        y_true, y_pred = sequence_data(sparse, rng, weight_shape)
        weight = rng.uniform(0.0, 2.0, size=weight_shape).astype(np.float32)
        keras_metric.update_state(y_true, y_pred, sample_weight=weight)
        ours.update_state(torch.from_numpy(y_true), torch.from_numpy(y_pred), torch.from_numpy(weight))
    np.testing.assert_allclose(ours.result(), float(keras_metric.result()), rtol=1e-6)


def test_outputs_of_one_layer_are_a_clear_error(tmp_path):
    """LSTM(return_state=True): three outputs that Keras names alike."""
    inputs = keras.Input((5, 3))
    outputs = keras.layers.LSTM(4, return_state=True, name="lstm")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss=["mse", "mse", "mse"])
    model.save(tmp_path / "lstm.keras")
    with pytest.raises(UnsupportedTraining, match="several outputs of one layer"):
        tf2torch.convert(tmp_path / "lstm.keras").training_setup()


def test_dict_output_keys_unlike_layer_names_are_a_clear_error(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, {"first": keras.layers.Dense(2, name="a")(inputs),
                                 "second": keras.layers.Dense(2, name="b")(inputs)})
    model.compile(optimizer="sgd", loss={"first": "mse", "second": "mae"})
    model.save(tmp_path / "d.keras")
    with pytest.raises(UnsupportedTraining, match="keys differ from the output layer names"):
        tf2torch.convert(tmp_path / "d.keras").training_setup()


def test_one_target_for_several_outputs_is_an_error(tmp_path):
    result = compiled_heads(tmp_path, loss=["categorical_crossentropy", "mse"])
    training = result.training_setup()
    x = torch.zeros(2, *IMAGE).permute(0, 3, 1, 2)
    with pytest.raises(ValueError, match="one target per output"):
        training.train_step([x], torch.zeros(2, 4))


@pytest.mark.slow
def test_torchrun_multi_output_sample_weights_equals_one_process(fitted_script, tmp_path):
    """Shares of a sample-weighted batch (sum_over_batch_size: weighted sum / element count)
    average to the one-process gradients; the weighted metrics' sums and counts are reduced."""
    import json
    import shutil
    import sys
    from pathlib import Path

    from safetensors.numpy import load_file

    _, _, out, root, _ = fitted_script
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None
    command = [torchrun, "--standalone", "--nproc_per_node=2",
               *script_cmd(out, tmp_path / "ddp", "--data", str(root / "data.npz"))[1:], "--quiet"]
    run_script(command, cwd=tmp_path)
    single = load_file(str(root / "ckpt" / "final.safetensors"))
    ddp = load_file(str(tmp_path / "ddp" / "final.safetensors"))
    for name in single:
        np.testing.assert_allclose(ddp[name], single[name], rtol=1e-5, atol=1e-6, err_msg=name)
    single_history = json.loads((root / "ckpt" / "history.json").read_text())
    ddp_history = json.loads((tmp_path / "ddp" / "history.json").read_text())
    for key in single_history:
        np.testing.assert_allclose(ddp_history[key], single_history[key], rtol=1e-5, err_msg=key)


@pytest.mark.parametrize("reduction", ["sum", "none", "sum_over_batch_size"])
def test_sums_over_batch_flags_losses_torchrun_cannot_split(reduction, tmp_path):
    """train.py refuses torchrun for these (each process would hold a share of a sum)."""
    result = compiled_heads(tmp_path, loss=["categorical_crossentropy", keras.losses.MeanSquaredError(
        reduction=reduction)])
    assert result.training_setup().sums_over_batch == (reduction != "sum_over_batch_size")
