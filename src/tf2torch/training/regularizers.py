"""Keras weight and activity regularizers as loss terms on torch tensors.

A weight regularizer receives the parameter *in the Keras layout* (`keras_view`, a
permuted view of the torch parameter), so axis-dependent ones (orthogonal) see what Keras
saw. Activity regularizers are divided by the batch size, as Keras 3 and tf.keras 2 do.

This file imports torch only: render_train.py copies it into train.py.
"""

from __future__ import annotations

import torch


class L1L2:
    """keras.regularizers.L1 / L2 / L1L2: `l1*sum(|w|) + l2*sum(w^2)`."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        loss = torch.zeros((), dtype=w.dtype, device=w.device)
        if self.l1:
            loss = loss + self.l1 * torch.sum(torch.abs(w))
        if self.l2:
            loss = loss + self.l2 * torch.sum(torch.square(w))
        return loss


class Orthogonal:
    """keras.regularizers.OrthogonalRegularizer on a rank-2 kernel in the Keras layout."""

    def __init__(self, factor: float = 0.01, mode: str = "rows") -> None:
        self.factor, self.mode = float(factor), mode

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        axis = 1 if self.mode == "rows" else 0
        w = w / torch.clamp(torch.linalg.vector_norm(w, dim=axis, keepdim=True), min=1e-7)
        product = w @ w.T if self.mode == "rows" else w.T @ w
        size = product.shape[0]
        off_diagonal = product * (1.0 - torch.eye(size, dtype=w.dtype, device=w.device))
        return self.factor * 0.5 * torch.sum(torch.abs(off_diagonal)) / (size * (size - 1.0) / 2.0)


def keras_view(param: torch.Tensor, keras_axes: tuple[int, ...] | None) -> torch.Tensor:
    """The torch parameter seen in the Keras layout: `keras_axes[i]` is the torch dim that
    holds Keras axis i (None: same layout)."""
    return param if keras_axes is None else param.permute(keras_axes)


class Regularization:
    """Sum of all weight regularizer terms of a model: `(name, param, keras_axes, regularizer)`."""

    def __init__(self, terms: list) -> None:
        self.terms = terms

    def __call__(self) -> torch.Tensor | None:
        total = None
        for _, param, axes, regularizer in self.terms:
            value = regularizer(keras_view(param, axes))
            total = value if total is None else total + value
        return total


class ActivityRegularization:
    """Keras activity regularizers: `regularizer(output) / batch size` for every call of a
    regularized layer, as loss terms.

    Forward hooks on the layers' torch modules record them during each call of the whole
    model (train and eval mode: Keras adds them to evaluation losses too); a call of the model
    starts a fresh record. `entries` are `(module attr, regularizer, keras_outputs)`, where
    `keras_outputs(model, module_result)` gives the Keras layer's outputs when forward() does
    more after the module (a fused activation), or is None."""

    def __init__(self, model: torch.nn.Module, entries: list) -> None:
        self.losses: list[torch.Tensor] = []
        self.handles = [model.register_forward_pre_hook(self._start)]
        for attr, regularizer, keras_outputs in entries:
            module = model.get_submodule(attr)
            self.handles.append(module.register_forward_hook(self._hook(model, regularizer, keras_outputs)))

    def _start(self, module, inputs) -> None:
        self.losses = []

    def _hook(self, model, regularizer, keras_outputs):
        def hook(module, inputs, output):
            # On a copy: forward() may change the module's result in place afterwards
            # (F.relu(x, inplace=True)), which would spoil what the regularizer saved for backward.
            output = self._copy(output)
            outputs = [output] if keras_outputs is None else keras_outputs(model, output)
            for out in outputs:
                loss = regularizer(out)
                if out.ndim > 0 and out.shape[0] > 0:
                    loss = loss / out.shape[0]  # Keras: divide_no_nan(loss, batch size)
                self.losses.append(loss)
        return hook

    @staticmethod
    def _copy(output):
        if isinstance(output, (tuple, list)):
            items = [ActivityRegularization._copy(o) for o in output]
            return type(output)(*items) if hasattr(output, "_fields") else type(output)(items)
        return output.clone() if torch.is_tensor(output) else output

    def pop(self) -> torch.Tensor | None:
        """The sum of the losses recorded since the model was last called (then forgotten)."""
        losses, self.losses = self.losses, []
        total = None
        for loss in losses:
            total = loss if total is None else total + loss
        return total

    def remove(self) -> None:
        """Detach the hooks from the model."""
        for handle in self.handles:
            handle.remove()
        self.handles = []
