"""Custom Keras layers traced in training mode too: the generated class dispatches on
`self.training`, both paths sharing the layer's parameters (frontends/tf/keras_layers.py,
converters/tf_ops.py::convert_tf_subgraph)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pytest
import torch
from tf_frontend_helpers import tf_trainable_count, trainable_count

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import tf2torch
from conftest import perturb_weights, set_batchnorm_statistics

register = keras.saving.register_keras_serializable(package="tf2torch_train_trace_tests")


@register
class HalfInTraining(keras.layers.Layer):
    def call(self, x, training=None):
        return x * 0.5 if training else x


@register
class ProjectThenDrop(keras.layers.Layer):
    """A Dense sub-layer, then a Keras Dropout: the dropout exists only in training."""

    def __init__(self, rate=0.3, noise_shape=None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.noise_shape = rate, noise_shape
        self.dense = keras.layers.Dense(6)
        self.dropout = keras.layers.Dropout(rate, noise_shape=noise_shape)

    def call(self, x, training=None):
        return self.dropout(self.dense(x), training=training)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape}


@register
class StochasticDepth(keras.layers.Layer):
    """Drops the whole residual branch of a sample with probability `rate` in training."""

    def __init__(self, rate=0.25, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed_generator = keras.random.SeedGenerator(7)

    def call(self, inputs, training=None):
        shortcut, branch = inputs
        if not training:
            return shortcut + branch
        shape = (keras.ops.shape(branch)[0],) + (1,) * (len(branch.shape) - 1)
        keep = keras.ops.cast(keras.random.uniform(shape, seed=self.seed_generator) >= self.rate, branch.dtype)
        return shortcut + branch * keep / (1.0 - self.rate)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@register
class NormalizedSin(keras.layers.Layer):
    """A BatchNormalization sub-layer: batch statistics and moving-statistics updates in training."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm = keras.layers.BatchNormalization(momentum=0.8, epsilon=1e-2)

    def call(self, x, training=None):
        return tf.sin(self.norm(x, training=training))


@register
class FrozenNormThenDrop(keras.layers.Layer):
    """A BatchNormalization always called in inference mode, then a Dropout."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm = keras.layers.BatchNormalization()
        self.dropout = keras.layers.Dropout(0.2)

    def call(self, x, training=None):
        return self.dropout(self.norm(x, training=False), training=training)


CUSTOM = {c.__name__: c for c in (HalfInTraining, ProjectThenDrop, StochasticDepth, NormalizedSin, FrozenNormThenDrop)}


def _convert(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(str(path))
    return tf2torch.convert(str(path), custom_objects=CUSTOM)


def _assert_ruff_clean(source: str, tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        path = tmp_path / "generated_model.py"
        path.write_text(source)
        done = subprocess.run([str(ruff), "check", "--isolated", "--line-length", "120", "--select", "E,F,W", str(path)],
                              check=False, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


def _inputs(shape, batch=4, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)


def test_deterministic_training_branch_matches_keras_training_exactly(tmp_path):
    inp = keras.Input((7,))
    x = keras.layers.Dense(5, name="proj")(inp)
    model = keras.Model(inp, keras.layers.Dense(3, name="head")(HalfInTraining(name="halves")(x)))
    perturb_weights(model)
    result = _convert(model, tmp_path)
    assert "if self.training:" in result.source_code and "traced in inference mode" not in result.source_code

    x = _inputs((7,), batch=5)
    module = result.module.train()
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(),
                               model(x, training=True).numpy(), rtol=0, atol=1e-5)
    module.eval()
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(),
                               model(x, training=False).numpy(), rtol=0, atol=1e-5)
    report = result.verify(keras_model=model, training=True, batch_size=3)
    assert report.ok and not report.traced_for_inference, report.table()
    assert all(o.status == "OK" for o in report.outputs)


def _dropout_model(noise_shape=None):
    inp = keras.Input((5, 9))
    x = ProjectThenDrop(0.3, noise_shape, name="proj_drop")(inp)
    model = keras.Model(inp, keras.layers.Dense(2, name="head")(x))
    perturb_weights(model)
    return model


def test_inner_dropout_becomes_nn_dropout_in_training_exact_in_inference(tmp_path):
    model = _dropout_model()
    result = _convert(model, tmp_path)
    assert "nn.Dropout(0.3)" in result.source_code and "torch.rand(" not in result.source_code
    _assert_ruff_clean(result.source_code, tmp_path)
    assert result.verify(keras_model=model, batch_size=3).ok

    # Dropout off on both sides (verification's copies): the rest of the training path is exact.
    report = result.verify(keras_model=model, training=True, batch_size=3)
    assert report.ok and not report.traced_for_inference, report.table()
    assert [o.status for o in report.outputs] == ["OK"] and report.silenced

    # The traced layer alone: about `rate` of its outputs dropped, the others scaled by 1/(1-rate).
    layer = result.module.proj_drop
    x = torch.from_numpy(_inputs((5, 9), batch=400, seed=1))
    layer.eval()
    reference = layer(x)
    layer.train()
    torch.manual_seed(0)
    dropped = layer(x)
    zero = dropped == 0
    assert 0.27 < zero.float().mean().item() < 0.33
    torch.testing.assert_close(dropped[~zero], (reference / 0.7)[~zero], rtol=1e-5, atol=1e-6)


def test_dropout_with_a_noise_shape_keeps_its_draw_and_is_random(tmp_path):
    model = _dropout_model(noise_shape=(None, 1, 6))
    result = _convert(model, tmp_path)
    assert "nn.Dropout" not in result.source_code and "torch.rand(" in result.source_code
    report = result.verify(keras_model=model, training=True, batch_size=3)
    assert report.ok and [o.status for o in report.outputs] == ["RANDOM"], report.table()
    layer = result.module.proj_drop.train()
    dropped = layer(torch.from_numpy(_inputs((5, 9), batch=50, seed=1)))
    # One draw per (sample, feature), shared by the 5 steps.
    assert torch.equal(dropped == 0, (dropped == 0)[:, :1].expand_as(dropped))


def test_training_path_shares_and_trains_the_layer_parameters(tmp_path):
    model = _dropout_model()
    result = _convert(model, tmp_path)
    module = result.module
    assert trainable_count(module) == tf_trainable_count(model.trainable_weights)
    module.train()
    loss = module(torch.from_numpy(_inputs((5, 9), batch=6))).square().mean()
    loss.backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values()), grads
    # A step taken in train() changes what inference computes.
    x = torch.from_numpy(_inputs((5, 9), batch=3, seed=2))
    module.eval()
    before = module(x).detach()
    with torch.no_grad():
        for p in module.parameters():
            p -= 0.1 * p.grad
    assert not torch.allclose(module(x), before)


def test_stochastic_depth_with_keras_random_draws_with_torch_in_training(tmp_path):
    inp = keras.Input((5, 3, 4))
    branch = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    out = StochasticDepth(0.25, name="drop_path")([inp, branch])
    model = keras.Model(inp, out)
    perturb_weights(model)
    result = _convert(model, tmp_path)
    assert result.verify(keras_model=model, batch_size=3).ok
    report = result.verify(keras_model=model, training=True, batch_size=3)
    assert report.ok and [o.status for o in report.outputs] == ["RANDOM"], report.table()

    module = result.module
    x = _inputs((5, 3, 4), batch=800, seed=3)
    module.eval()
    shortcut = torch.from_numpy(x).permute(0, 3, 1, 2)  # images in and out are NCHW
    full = module(shortcut).detach()
    module.train()
    torch.manual_seed(1)
    drawn = module(shortcut).detach()
    assert drawn.shape == shortcut.shape
    kept_branch = (drawn - shortcut).flatten(1)
    branch_eval = (full - shortcut).flatten(1)
    dropped = kept_branch.abs().amax(1) == 0  # a whole sample's branch at once
    assert 0.2 < dropped.float().mean().item() < 0.3
    torch.testing.assert_close(kept_branch[~dropped], branch_eval[~dropped] / 0.75, rtol=1e-4, atol=1e-5)


def test_inner_batchnorm_is_inference_only_but_trains_its_statistics_like_keras(tmp_path):
    inp = keras.Input((6, 5))
    x = keras.layers.Dense(4, name="proj")(inp)
    model = keras.Model(inp, NormalizedSin(name="norm_sin")(x))
    perturb_weights(model)
    set_batchnorm_statistics(model, _inputs((6, 5), batch=8, seed=4))
    result = _convert(model, tmp_path)
    note = "norm_sin (NormalizedSin) was traced in inference mode only: its call() updates its variables in training"
    assert note in result.source_code and "update their moving statistics as in Keras" in result.source_code
    assert "if self.training:" not in result.source_code
    assert result.verify(keras_model=model, batch_size=3).ok
    report = result.verify(keras_model=model, training=True, batch_size=3)
    assert report.ok and report.traced_for_inference == ["norm_sin"], report.table()

    # One training step on each side: batch statistics out, the same moving statistics after
    # (momentum 0.8, which the trace alone does not show).
    x = _inputs((6, 5), batch=5, seed=5)
    module = result.module.train()
    out = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(out, model(x, training=True).numpy(), rtol=0, atol=1e-5)
    norm = model.get_layer("norm_sin").norm
    bn = next(m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    np.testing.assert_allclose(bn.running_mean.numpy(), norm.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), norm.moving_variance.numpy(), rtol=1e-5, atol=1e-6)


def test_batchnorm_in_inference_mode_within_training_is_not_converted_for_training(tmp_path):
    inp = keras.Input((7,))
    model = keras.Model(inp, FrozenNormThenDrop(name="frozen_drop")(keras.layers.Dense(4, name="proj")(inp)))
    perturb_weights(model)
    result = _convert(model, tmp_path)
    assert "frozen_drop (FrozenNormThenDrop) was traced in inference mode only: it normalizes with moving " \
        "statistics in training" in result.source_code
    assert result.verify(keras_model=model, batch_size=3).ok
    assert result.verify(keras_model=model, training=True, batch_size=3).traced_for_inference == ["frozen_drop"]


CLI_LAYERS = '''
import keras


@keras.saving.register_keras_serializable(package="tf2torch_cli_train_trace")
class DenseDropHalf(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(5)
        self.dropout = keras.layers.Dropout(0.4)

    def call(self, x, training=None):
        y = self.dropout(self.dense(x), training=training)
        return y * 0.5 if training else y
'''


def test_cli_verify_train_passes_for_a_layer_converted_in_both_modes(tmp_path, capsys):
    import importlib.util
    import sys

    from tf2torch import cli

    code = tmp_path / "train_trace_layers.py"
    code.write_text(CLI_LAYERS)
    spec = importlib.util.spec_from_file_location("train_trace_layers", code)
    layers = importlib.util.module_from_spec(spec)
    sys.modules["train_trace_layers"] = layers
    spec.loader.exec_module(layers)
    inp = keras.Input((3, 7))
    model = keras.Model(inp, layers.DenseDropHalf(name="dense_drop")(inp))
    perturb_weights(model)
    path = tmp_path / "model.keras"
    model.save(str(path))
    status = cli.main(["verify", str(path), "--train", "--custom-code", str(code), "--html", str(tmp_path / "v.html")])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "Result: OK" in out and "Traced in inference mode" not in out
