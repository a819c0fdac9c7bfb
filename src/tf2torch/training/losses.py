"""Keras' built-in losses with Keras' reduction semantics, called as `loss(y_true, y_pred)`.

Each function returns the per-sample loss (Keras reduces the class axis first); `KerasLoss`
applies the reduction: `sum_over_batch_size` divides the weighted sum by the number of
elements of the per-sample tensor (by the number of unmasked ones with `ignore_class`).
Probability outputs are clipped to [1e-7, 1 - 1e-7] as Keras does.

This file imports torch only: render_train.py copies it into train.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

EPSILON = 1e-7


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)  # (batch,) targets of (batch, 1)
    return torch.mean(torch.square(y_pred - y_true), dim=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)  # (batch,) targets of (batch, 1)
    return torch.mean(torch.abs(y_pred - y_true), dim=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)  # (batch,) targets of (batch, 1)
    diff = torch.abs((y_true - y_pred) / torch.clamp(torch.abs(y_true), min=EPSILON))
    return 100.0 * torch.mean(diff, dim=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)  # (batch,) targets of (batch, 1)
    first = torch.log(torch.clamp(y_pred, min=EPSILON) + 1.0)
    second = torch.log(torch.clamp(y_true, min=EPSILON) + 1.0)
    return torch.mean(torch.square(first - second), dim=-1)


def _l2_normalize(x, axis):
    return x * torch.rsqrt(torch.clamp(torch.sum(x * x, dim=axis, keepdim=True), min=1e-12))


def cosine_similarity(y_true, y_pred, axis=-1):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)  # (batch,) targets of (batch, 1)
    return -torch.sum(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis), dim=axis)


def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)  # (batch,) targets of (batch, 1)
    error = y_pred - y_true
    abs_error = torch.abs(error)
    quadratic = 0.5 * torch.square(error)
    linear = delta * abs_error - 0.5 * delta**2
    return torch.mean(torch.where(abs_error <= delta, quadratic, linear), dim=-1)


def log_cosh(y_true, y_pred):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)  # (batch,) targets of (batch, 1)
    x = y_pred - y_true
    return torch.mean(x + F.softplus(-2.0 * x) - torch.log(torch.tensor(2.0, dtype=x.dtype)), dim=-1)


def _signed_labels(y_true):
    """Keras hinge losses turn {0, 1} labels into {-1, 1}."""
    is_binary = torch.all((y_true == 0) | (y_true == 1))
    return torch.where(is_binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true, y_pred):
    return torch.mean(torch.clamp(1.0 - _signed_labels(y_true) * y_pred, min=0.0), dim=-1)


def squared_hinge(y_true, y_pred):
    return torch.mean(torch.square(torch.clamp(1.0 - _signed_labels(y_true) * y_pred, min=0.0)), dim=-1)


def categorical_hinge(y_true, y_pred):
    pos = torch.sum(y_true * y_pred, dim=-1)
    neg = torch.amax((1.0 - y_true) * y_pred, dim=-1)
    return torch.clamp(neg - pos + 1.0, min=0.0)


def kl_divergence(y_true, y_pred):
    y_true = torch.clamp(y_true, EPSILON, 1.0)
    y_pred = torch.clamp(y_pred, EPSILON, 1.0)
    return torch.sum(y_true * torch.log(y_true / y_pred), dim=-1)


def poisson(y_true, y_pred):
    return torch.mean(y_pred - y_true * torch.log(y_pred + EPSILON), dim=-1)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    if label_smoothing:
        num_classes = y_pred.shape[axis]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / num_classes
    if from_logits:
        return -torch.sum(y_true * F.log_softmax(y_pred, dim=axis), dim=axis)
    y_pred = y_pred / torch.sum(y_pred, dim=axis, keepdim=True)
    y_pred = torch.clamp(y_pred, EPSILON, 1.0 - EPSILON)
    return -torch.sum(y_true * torch.log(y_pred), dim=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    labels = y_true.long()
    if labels.ndim == y_pred.ndim:
        labels = labels.squeeze(axis)
    valid = None
    if ignore_class is not None:
        valid = labels != ignore_class
        labels = torch.where(valid, labels, torch.zeros_like(labels))
    if from_logits:
        log_p = F.log_softmax(y_pred, dim=axis)
    else:
        y_pred = y_pred / torch.sum(y_pred, dim=axis, keepdim=True)
        log_p = torch.log(torch.clamp(y_pred, EPSILON, 1.0 - EPSILON))
    loss = -torch.gather(log_p.movedim(axis, -1), -1, labels.unsqueeze(-1)).squeeze(-1)
    if valid is not None:
        loss = torch.where(valid, loss, torch.zeros_like(loss))
        loss.keras_mask = valid
    return loss


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        bce = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        p = torch.clamp(y_pred, EPSILON, 1.0 - EPSILON)
        bce = -(y_true * torch.log(p) + (1.0 - y_true) * torch.log(1.0 - p))
    return torch.mean(bce, dim=axis)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                              from_logits=False, label_smoothing=0.0, axis=-1):
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        y_pred = torch.sigmoid(y_pred)
    p = torch.clamp(y_pred, EPSILON, 1.0 - EPSILON)
    bce = -(y_true * torch.log(p) + (1.0 - y_true) * torch.log(1.0 - p))
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal = torch.pow(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return torch.mean(focal, dim=axis)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                                   axis=-1):
    # Keras smooths with the size of the last axis whatever `axis` is, and multiplies by
    # `alpha` (a scalar or a per-class list) broadcast against the last axis.
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
    if from_logits:
        y_pred = torch.softmax(y_pred, dim=axis)
    output = y_pred / torch.sum(y_pred, dim=axis, keepdim=True)
    output = torch.clamp(output, EPSILON, 1.0 - EPSILON)
    cce = -y_true * torch.log(output)
    if isinstance(alpha, (list, tuple)):
        alpha = torch.tensor(alpha, dtype=output.dtype)
    focal = torch.pow(1.0 - output, gamma) * alpha * cce
    return torch.sum(focal, dim=axis)


def _sum_over(x, axis):
    """`ops.sum(x, axis)`: every element when `axis` is None."""
    if axis is None:
        return torch.sum(x)
    return torch.sum(x, dim=list(axis) if isinstance(axis, (list, tuple)) else axis)


def dice(y_true, y_pred, axis=None):
    intersection = _sum_over(y_true * y_pred, axis)
    return 1.0 - 2.0 * intersection / (_sum_over(y_true, axis) + _sum_over(y_pred, axis) + EPSILON)


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    intersection = _sum_over(y_true * y_pred, axis)
    fp = _sum_over((1.0 - y_pred) * y_true, axis)
    fn = _sum_over(y_pred * (1.0 - y_true), axis)
    return 1.0 - intersection / (intersection + fp * alpha + fn * beta + EPSILON)


def ctc(y_true, y_pred):
    """Keras' CTC: `y_true` (batch, max_length) integer labels padded with the blank 0,
    `y_pred` (batch, steps, classes) logits; every sequence uses all `steps`."""
    labels = y_true.long()
    log_probs = F.log_softmax(y_pred, dim=-1).transpose(0, 1)
    input_lengths = torch.full((y_pred.shape[0],), y_pred.shape[1], dtype=torch.long)
    label_lengths = torch.sum(labels != 0, dim=-1)
    return F.ctc_loss(log_probs, labels, input_lengths, label_lengths, blank=0, reduction="none")


LOSS_FUNCTIONS: dict[str, Callable] = {
    "mean_squared_error": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "cosine_similarity": cosine_similarity,
    "huber": huber,
    "log_cosh": log_cosh,
    "hinge": hinge,
    "squared_hinge": squared_hinge,
    "categorical_hinge": categorical_hinge,
    "kl_divergence": kl_divergence,
    "poisson": poisson,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "binary_focal_crossentropy": binary_focal_crossentropy,
    "categorical_focal_crossentropy": categorical_focal_crossentropy,
    "dice": dice,
    "tversky": tversky,
    "ctc": ctc,
}


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Keras: squeeze or expand the last axis when the ranks differ by exactly one."""
    if x1.ndim == x2.ndim:
        return x1, x2
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        if x2.ndim == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    if x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        if x1.ndim == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


class KerasLoss:
    """A Keras loss object: `fn` with its arguments, then Keras' reduction.

    With `sample_weight`, the per-sample losses are multiplied by it and (for
    sum_over_batch_size) still divided by their number of elements, not by the weights' sum;
    reduction "none" returns the weighted per-sample losses."""

    def __init__(self, fn: Callable, reduction: str = "sum_over_batch_size", **kwargs) -> None:
        self.fn, self.reduction, self.kwargs = fn, reduction, kwargs

    def __call__(self, y_true: torch.Tensor, y_pred: torch.Tensor, sample_weight: torch.Tensor | None = None) -> torch.Tensor:
        y_true = y_true.to(y_pred.dtype) if self.fn is not sparse_categorical_crossentropy else y_true
        # Keras' LossFunctionWrapper: (batch,) targets of (batch, 1) predictions become (batch, 1).
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        values = self.fn(y_true, y_pred, **self.kwargs)
        mask = getattr(values, "keras_mask", None)
        if sample_weight is None:
            if self.reduction == "none" or self.reduction is None:
                return values
            total = values.sum()
            if self.reduction == "sum":
                return total
            if mask is not None:
                valid = mask.to(values.dtype).sum()
                return total / (valid + EPSILON)
            return total / max(values.numel(), 1)
        # Keras' reduce_weighted_values: the mask becomes part of the weights.
        weight = torch.as_tensor(sample_weight).to(values.dtype)
        if mask is not None:
            float_mask = mask.to(values.dtype)
            if self.reduction in ("sum_over_batch_size", "mean"):
                valid = float_mask.sum()
                float_mask = float_mask * torch.where(valid > 0, mask.numel() / valid, torch.zeros_like(valid))
            float_mask, weight = squeeze_or_expand_to_same_rank(float_mask, weight)
            weight = weight * float_mask
        values, weight = squeeze_or_expand_to_same_rank(values, weight)
        values = values * weight
        if self.reduction == "none" or self.reduction is None or values.ndim == 0:
            return values
        total = values.sum()
        if self.reduction == "sum":
            return total
        divisor = weight.sum() if self.reduction == "mean_with_sample_weight" else values.numel()
        return total / divisor if float(divisor) != 0 else torch.zeros_like(total)
