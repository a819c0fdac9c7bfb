"""Keras weight constraints, applied after every optimizer step in the torch layout.

`keras_axes` (see regularizers.keras_view) turns the torch parameter into a view in the
Keras layout, so `axis=` means what it meant in Keras; the constraint writes through it.

This file imports torch only: render_train.py copies it into train.py.
"""

from __future__ import annotations

import torch

CONSTRAINT_EPSILON = 1e-7


def _norms(w: torch.Tensor, axis) -> torch.Tensor:
    dims = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    return torch.sqrt(torch.sum(torch.square(w), dim=dims, keepdim=True))


class MaxNorm:
    def __init__(self, max_value: float = 2.0, axis=0) -> None:
        self.max_value, self.axis = float(max_value), axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = _norms(w, self.axis)
        desired = torch.clamp(norms, 0.0, self.max_value)
        return w * (desired / (CONSTRAINT_EPSILON + norms))


class MinMaxNorm:
    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis=0) -> None:
        self.min_value, self.max_value, self.rate, self.axis = float(min_value), float(max_value), float(rate), axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = _norms(w, self.axis)
        desired = self.rate * torch.clamp(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (CONSTRAINT_EPSILON + norms))


class UnitNorm:
    def __init__(self, axis=0) -> None:
        self.axis = axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w / (CONSTRAINT_EPSILON + _norms(w, self.axis))


class NonNeg:
    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w * (w >= 0.0).to(w.dtype)


class Constraints:
    """All constraints of a model: `(name, param, keras_axes, constraint)`; call after step()."""

    def __init__(self, terms: list) -> None:
        self.terms = terms

    @torch.no_grad()
    def __call__(self) -> None:
        for _, param, axes, constraint in self.terms:
            view = param if axes is None else param.permute(axes)
            view.copy_(constraint(view))
