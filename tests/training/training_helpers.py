"""Shared by the training tests: N steps in Keras (train_on_batch, TF backend) vs N steps of
the converted module with `training_setup()`, from the same weights and batches."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import tf2torch

RTOL = 1e-4


@dataclass
class Parity:
    keras_losses: np.ndarray
    torch_losses: np.ndarray
    weight_errors: dict[str, float]  # torch tensor -> max |diff| / max |keras|

    def check(self, rtol: float = RTOL) -> None:
        assert self.weight_errors, "no weights compared"
        worst = max(self.weight_errors.items(), key=lambda kv: kv[1])
        assert worst[1] < rtol, f"weights differ after training: {worst}"
        np.testing.assert_allclose(self.torch_losses, self.keras_losses, rtol=rtol, atol=1e-6)


def batches(shape: tuple[int, ...], labels: tuple[int, ...] | str, steps: int, batch: int, seed: int = 0) -> list:
    """`labels`: number of classes for sparse labels (int), "onehot:C", "binary:C" or "regress:C"."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        x = rng.normal(size=(batch, *shape)).astype(np.float32)
        if isinstance(labels, int):
            y = rng.integers(0, labels, size=(batch,)).astype(np.int64)
        else:
            kind, n = labels.split(":")
            if kind == "onehot":
                y = np.eye(int(n), dtype=np.float32)[rng.integers(0, int(n), size=batch)]
            elif kind == "binary":
                y = rng.integers(0, 2, size=(batch, int(n))).astype(np.float32)
            else:
                y = rng.normal(size=(batch, int(n))).astype(np.float32)
        out.append((x, y))
    return out


def keras_layout_to_torch(x: np.ndarray, result: Any) -> torch.Tensor:
    perm = result.graph.inputs[0].perm
    return torch.from_numpy(np.ascontiguousarray(x if perm is None else np.transpose(x, perm)))


def torch_steps(result: Any, training: Any, data: list) -> list[float]:
    losses = []
    for x, y in data:
        loss = training.train_step([keras_layout_to_torch(x, result)], torch.from_numpy(y))
        losses.append(float(loss))
    return losses


def keras_steps(model: Any, data: list) -> list[float]:
    losses = []
    for x, y in data:
        out = model.train_on_batch(x, y)
        losses.append(float(out[0] if isinstance(out, (list, tuple)) else out))
    return losses


def compare_weights(model: Any, module: torch.nn.Module, tmp_path: Path, suffix: str = ".keras") -> dict[str, float]:
    """Convert the trained Keras model: its state dict is Keras' weights in torch layout."""
    path = tmp_path / f"trained{suffix}"
    model.save(path)
    reference = tf2torch.convert(path).state_dict
    actual = module.state_dict()
    errors = {}
    for name, expected in reference.items():
        if expected.dtype.kind != "f":
            continue
        got = actual[name].detach().numpy()
        errors[name] = float(np.max(np.abs(got - expected)) / max(np.max(np.abs(expected)), 1e-6))
    return errors


def run_parity(model: Any, data: list, tmp_path: Path, suffix: str = ".keras") -> Parity:
    """Save the compiled, untrained model, convert it, then train both sides on `data`."""
    path = tmp_path / f"start{suffix}"
    model.save(path)
    result = tf2torch.convert(path)
    training = result.training_setup()
    torch_losses = torch_steps(result, training, data)
    keras_losses = keras_steps(model, data)
    return Parity(np.array(keras_losses), np.array(torch_losses), compare_weights(model, result.module, tmp_path, suffix))
