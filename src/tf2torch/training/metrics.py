"""Keras metrics as small stateful objects: `update_state(y_true, y_pred)`, `result()`,
`reset_state()`. Mean metrics average over every sample seen, as Keras' MeanMetricWrapper;
"accuracy" resolves to binary / sparse categorical / categorical accuracy from the shapes,
as Keras' compile does.

This file imports torch only: render_train.py copies it into train.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from tf2torch.training.losses import squeeze_or_expand_to_same_rank


def accuracy(y_true, y_pred):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true == y_pred).to(torch.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return torch.mean(((y_pred > threshold).to(y_true.dtype) == y_true).to(torch.float32), dim=-1)


def categorical_accuracy(y_true, y_pred):
    return (torch.argmax(y_true, dim=-1) == torch.argmax(y_pred, dim=-1)).to(torch.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    labels = y_true.reshape(y_pred.shape[:-1]) if y_true.numel() == y_pred[..., 0].numel() else y_true
    return (labels.long() == torch.argmax(y_pred, dim=-1)).to(torch.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    return sparse_top_k_categorical_accuracy(torch.argmax(y_true, dim=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    labels = y_true.reshape(y_pred.shape[:-1]).long()
    top = torch.topk(y_pred, min(k, y_pred.shape[-1]), dim=-1).indices
    return (top == labels.unsqueeze(-1)).any(dim=-1).to(torch.float32)


class Mean:
    """Keras MeanMetricWrapper: the mean of `fn(y_true, y_pred)` over all samples seen."""

    def __init__(self, name: str, fn: Callable | None = None, **kwargs) -> None:
        self.name, self.fn, self.kwargs = name, fn, kwargs
        self.reset_state()

    def reset_state(self) -> None:
        self.total = torch.zeros((), dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.float64)

    @torch.no_grad()
    def update_state(self, y_true: torch.Tensor, y_pred: torch.Tensor, sample_weight=None) -> None:
        values = self.fn(y_true, y_pred, **self.kwargs) if self.fn is not None else y_pred
        if sample_weight is None:
            self.total += values.double().sum()
            self.count += values.numel()
            return
        # Keras' weighted mean (weighted_metrics): per-sample values times their weights,
        # divided by the sum of the weights.
        weight = torch.as_tensor(sample_weight).to(values.dtype)
        values, weight = squeeze_or_expand_to_same_rank(values, weight)
        if values.ndim > weight.ndim:
            values = torch.mean(values, dim=list(range(weight.ndim, values.ndim)))
        weight = torch.broadcast_to(weight, values.shape)
        values = values * weight
        if weight.ndim > 1:
            weight = torch.mean(weight, dim=list(range(1, weight.ndim)))
        if values.ndim > 1:
            values = torch.mean(values, dim=list(range(1, values.ndim)))
        self.total += values.double().sum()
        self.count += weight.double().sum()

    def update_value(self, value: torch.Tensor, weight: float) -> None:
        """A pre-computed batch value (the loss), weighted by the batch size."""
        self.total += float(value) * weight
        self.count += weight

    def result(self) -> float:
        return float(self.total / self.count) if self.count > 0 else 0.0


class Accuracy(Mean):
    """Keras' "accuracy" string: the variant is chosen from the label and output shapes."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.fn is None:
            if y_pred.shape[-1] == 1:
                self.fn = binary_accuracy
            elif y_true.ndim < y_pred.ndim or y_true.shape[-1] == 1:
                self.fn = sparse_categorical_accuracy
            else:
                self.fn = categorical_accuracy
        super().update_state(y_true, y_pred, sample_weight)


class ConfusionMetric:
    """Precision / Recall: counts over every element, thresholded at 0.5."""

    def __init__(self, name: str, kind: str, thresholds: float = 0.5) -> None:
        self.name, self.kind, self.threshold = name, kind, thresholds
        self.reset_state()

    def reset_state(self) -> None:
        self.tp = self.fp = self.fn = 0.0

    @torch.no_grad()
    def update_state(self, y_true, y_pred):
        pred = y_pred > self.threshold
        true = y_true.reshape(y_pred.shape) > 0.5
        self.tp += float((pred & true).sum())
        self.fp += float((pred & ~true).sum())
        self.fn += float((~pred & true).sum())

    def result(self) -> float:
        denominator = self.tp + (self.fp if self.kind == "precision" else self.fn)
        return self.tp / denominator if denominator > 0 else 0.0


class AUC:
    """Keras AUC (ROC, 200 thresholds, interpolation summation)."""

    def __init__(self, name: str = "auc", num_thresholds: int = 200) -> None:
        self.name = name
        epsilon = 1e-7
        inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.thresholds = torch.tensor([0.0 - epsilon] + inner + [1.0 + epsilon], dtype=torch.float32)
        self.reset_state()

    def reset_state(self) -> None:
        n = len(self.thresholds)
        self.tp, self.fp, self.tn, self.fn = (torch.zeros(n, dtype=torch.float64) for _ in range(4))

    @torch.no_grad()
    def update_state(self, y_true, y_pred):
        pred = y_pred.reshape(-1, 1) > self.thresholds
        true = (y_true.reshape(-1, 1) > 0.5)
        self.tp += (pred & true).sum(0)
        self.fp += (pred & ~true).sum(0)
        self.tn += (~pred & ~true).sum(0)
        self.fn += (~pred & true).sum(0)

    def result(self) -> float:
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn
        tpr = tp / torch.clamp(tp + fn, min=1e-300)
        fpr = fp / torch.clamp(fp + tn, min=1e-300)
        x, y = fpr, tpr
        return float(torch.sum((x[:-1] - x[1:]) * (y[:-1] + y[1:]) / 2.0))


def _mean(name: str, fn: Callable, **kwargs) -> Callable[[], Mean]:
    return lambda: Mean(name, fn, **kwargs)


METRICS: dict[str, Callable[..., object]] = {
    "accuracy": lambda name="accuracy": Accuracy(name),
    "binary_accuracy": lambda name="binary_accuracy", threshold=0.5: Mean(name, binary_accuracy, threshold=threshold),
    "categorical_accuracy": lambda name="categorical_accuracy": Mean(name, categorical_accuracy),
    "sparse_categorical_accuracy": lambda name="sparse_categorical_accuracy": Mean(name, sparse_categorical_accuracy),
    "top_k_categorical_accuracy": lambda name="top_k_categorical_accuracy", k=5: Mean(name, top_k_categorical_accuracy, k=k),
    "sparse_top_k_categorical_accuracy": (
        lambda name="sparse_top_k_categorical_accuracy", k=5: Mean(name, sparse_top_k_categorical_accuracy, k=k)
    ),
    "precision": lambda name="precision", thresholds=0.5: ConfusionMetric(name, "precision", thresholds),
    "recall": lambda name="recall", thresholds=0.5: ConfusionMetric(name, "recall", thresholds),
    "auc": lambda name="auc", num_thresholds=200: AUC(name, num_thresholds),
}
