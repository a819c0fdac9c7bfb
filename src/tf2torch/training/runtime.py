"""One Keras training step in PyTorch, in Keras' order.

forward (train mode) -> compiled loss + regularization losses -> backward -> optimizer step
(clip, weight decay, update, EMA) -> constraints -> metrics on the same predictions. The
reported loss includes the regularization terms, as Keras' fit() prints it.

This file imports torch only: render_train.py copies it into train.py.
"""

from __future__ import annotations

import torch


class Training:
    """What `compile()` configured, bound to a converted module."""

    def __init__(self, model, optimizer, loss_fn, metrics, regularization=None, constraints=None,
                 activity=None, output_axes=None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.schedule = getattr(optimizer, "schedule", None)
        self.loss_fn = loss_fn
        self.metrics = list(metrics)
        self.regularization = regularization
        self.constraints = constraints
        self.activity = activity
        self.output_axes = output_axes  # torch output -> Keras layout (None: same)

    def keras_output(self, y_pred: torch.Tensor) -> torch.Tensor:
        return y_pred if self.output_axes is None else y_pred.permute(self.output_axes)

    def compute_loss(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(y_true, y_pred)
        if self.regularization is not None:
            extra = self.regularization()
            if extra is not None:
                loss = loss + extra
        if self.activity is not None:
            extra = self.activity.pop()
            if extra is not None:
                loss = loss + extra
        return loss

    def train_step(self, inputs, y_true: torch.Tensor, forward=None, loss_scale: float = 1.0) -> torch.Tensor:
        """One optimizer update on one batch; returns the loss Keras would report.

        `forward` is the module to call (a DistributedDataParallel wrapper of `model`);
        `loss_scale` weights this process's loss so that averaged gradients equal the global
        batch's (uneven shards under torchrun)."""
        forward = self.model if forward is None else forward
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        y_pred = self.keras_output(forward(*inputs))
        loss = self.compute_loss(y_true, y_pred)
        (loss * loss_scale).backward()
        self.optimizer.step()
        if self.constraints is not None:
            self.constraints()
        with torch.no_grad():
            for metric in self.metrics:
                metric.update_state(y_true, y_pred.detach())
        return loss.detach()

    @torch.no_grad()
    def test_step(self, inputs, y_true: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        y_pred = self.keras_output(self.model(*inputs))
        loss = self.compute_loss(y_true, y_pred)
        for metric in self.metrics:
            metric.update_state(y_true, y_pred)
        return loss

    def reset_metrics(self) -> None:
        for metric in self.metrics:
            metric.reset_state()
