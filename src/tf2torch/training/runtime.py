"""One Keras training step in PyTorch, in Keras' order.

forward (train mode) -> compiled loss + regularization losses -> backward -> optimizer step
(clip, weight decay, update, EMA) -> constraints -> metrics on the same predictions. The
reported loss includes the regularization terms, as Keras' fit() prints it.

This file imports torch only: render_train.py copies it into train.py.
"""

from __future__ import annotations

import torch

from tf2torch.training.metrics import Mean


def keras2_match_rank(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """tf.keras 2's compile_utils.match_dtype_and_rank, applied before every compiled metric:
    1-D targets of a 2-D prediction become (batch, 1); a float (int) target takes a float
    (int) prediction's dtype. (So `categorical_accuracy` on integer labels compares the
    prediction with class 0, as tf.keras does.)"""
    if y_true.dim() == 1 and y_pred.dim() == 2:
        y_true = y_true.unsqueeze(-1)
    if y_true.is_floating_point() == y_pred.is_floating_point() and y_true.dtype != y_pred.dtype:
        y_true = y_true.to(y_pred.dtype)
    return y_true


class Training:
    """What `compile()` configured, bound to a converted module."""

    def __init__(self, model, optimizer, loss_fn, metrics, regularization=None, constraints=None,
                 activity=None, output_axes=None, weighted_metrics=None, loss_weights=None, output_names=None,
                 target_order=None, loss_trackers=None, keras2_targets=False) -> None:
        """Several outputs (`output_names`: the module's outputs in order): `loss_fn`,
        `metrics`, `weighted_metrics`, `loss_weights` and `output_axes` are dicts by output
        name; targets and sample weights are dicts by name or sequences in `target_order`
        (Keras' flat output order; default `output_names`); `loss_trackers` names the
        per-output loss means Keras reports ("<output>_loss")."""
        self.model = model
        self.optimizer = optimizer
        self.schedule = getattr(optimizer, "schedule", None)
        self.loss_fn = loss_fn
        self.regularization = regularization
        self.constraints = constraints
        self.activity = activity
        self.output_axes = output_axes  # torch output -> Keras layout (None: same)
        self.loss_weights = loss_weights
        self.output_names = None if output_names is None else list(output_names)
        self.target_order = self.output_names if target_order is None else list(target_order)
        # (metric, output name or None, receives the sample weights), in Keras' report order.
        self.routes = []
        for weighted, group in ((False, metrics), (True, weighted_metrics or [])):
            items = group.items() if isinstance(group, dict) else [(None, group)]
            self.routes += [(metric, name, weighted) for name, ms in items for metric in ms]
        self.metrics = [metric for metric, _, _ in self.routes]
        self.loss_trackers = {name: Mean(f"{name}_loss") for name in (loss_trackers or [])}
        self.keras2_targets = keras2_targets  # tf.keras 2 reshapes targets before its metrics
        # Embeddings with sparse gradients (one row per token occurrence, as Keras sees them);
        # under torchrun they are left out of DistributedDataParallel, which would sum the rows.
        self.sparse_parameters = {name: m.weight for name, m in model.named_modules()
                                  if isinstance(m, torch.nn.Embedding) and m.sparse and m.weight.requires_grad}

    @property
    def sums_over_batch(self) -> bool:
        """A compiled loss that is not a mean over the batch ("sum", "none"): its value does
        not split into shares of the batch (torchrun)."""
        losses = self.loss_fn.values() if isinstance(self.loss_fn, dict) else [self.loss_fn]
        mean = ("sum_over_batch_size", "mean")
        return any(getattr(fn, "reduction", "sum_over_batch_size") not in mean for fn in losses)

    @property
    def reported_metrics(self) -> list:
        """Every metric in the order Keras' logs list them (per-output losses last)."""
        return self.metrics + list(self.loss_trackers.values())

    def keras_output(self, y_pred):
        """The module's output(s) in Keras' layout; several outputs as a dict by name."""
        if self.output_names is None:
            return y_pred if self.output_axes is None else y_pred.permute(self.output_axes)
        axes = self.output_axes or {}
        return {name: out if axes.get(name) is None else out.permute(axes[name])
                for name, out in zip(self.output_names, y_pred)}

    def by_output(self, values, shared: bool = False):
        """Targets or sample weights as a dict by output name (`shared`: one tensor is the
        sample weight of every output)."""
        if self.output_names is None or values is None:
            return values
        if isinstance(values, dict):
            return values
        if torch.is_tensor(values) and shared:
            return {name: values for name in self.output_names}
        if torch.is_tensor(values):
            raise ValueError(f"expected one target per output {self.target_order}, got one tensor")
        if len(values) != len(self.target_order):
            raise ValueError(f"expected {len(self.target_order)} arrays (for {self.target_order}), got {len(values)}")
        return dict(zip(self.target_order, values))

    def compiled_loss(self, y_true, y_pred, sample_weight=None) -> torch.Tensor:
        """Keras' compiled loss: the sum over outputs of weight * loss (no regularization)."""
        if self.output_names is None:
            loss = self.loss_fn(y_true, y_pred, sample_weight) if sample_weight is not None \
                else self.loss_fn(y_true, y_pred)
            return loss if self.loss_weights is None else loss * self.loss_weights
        y_true, sample_weight = self.by_output(y_true), self.by_output(sample_weight, shared=True)
        total = None
        for name, loss_fn in self.loss_fn.items():
            weight = None if sample_weight is None else sample_weight.get(name)
            value = loss_fn(y_true[name], y_pred[name], weight) if weight is not None else loss_fn(y_true[name], y_pred[name])
            tracker = self.loss_trackers.get(name)
            if tracker is not None:  # unweighted, averaged over samples as Keras' Mean does
                tracker.update_value(value.detach().mean(), y_pred[name].shape[0])
            if self.loss_weights is not None and self.loss_weights.get(name) is not None:
                value = value * self.loss_weights[name]
            total = value if total is None else total + value
        return total

    def compute_loss(self, y_true, y_pred, sample_weight=None) -> torch.Tensor:
        loss = self.compiled_loss(y_true, y_pred, sample_weight)
        if self.regularization is not None:
            extra = self.regularization()
            if extra is not None:
                loss = loss + extra
        if self.activity is not None:
            extra = self.activity.pop()
            if extra is not None:
                loss = loss + extra
        return loss

    def train_step(self, inputs, y_true, forward=None, loss_scale: float = 1.0, sample_weight=None) -> torch.Tensor:
        """One optimizer update on one batch; returns the loss Keras would report.

        `forward` is the module to call (a DistributedDataParallel wrapper of `model`);
        `loss_scale` weights this process's loss so that averaged gradients equal the global
        batch's (uneven shards under torchrun). `loss_scale=0` is a process whose shard of the
        batch is empty: it runs a stand-in batch in eval mode (no BatchNorm statistics), takes
        part in the gradient all-reduce with zero gradients and updates no metric. Several
        outputs: `y_true` is a list in Keras' output order or a dict by output name;
        `sample_weight` is one tensor for every output or one per output, like
        `fit(sample_weight=)`."""
        forward = self.model if forward is None else forward
        stand_in = loss_scale == 0
        self.model.train(not stand_in)
        self.optimizer.zero_grad(set_to_none=True)
        y_pred = self.keras_output(forward(*inputs))
        loss = self.compute_loss(y_true, y_pred, sample_weight)
        # A loss with reduction "none" stays a per-sample tensor: TensorFlow's tape then
        # differentiates its sum, and Keras reports its mean.
        (loss.sum() * loss_scale).backward()
        if self.sparse_parameters and torch.distributed.is_initialized():
            self.gather_sparse_gradients()
        self.optimizer.step()
        if self.constraints is not None:
            self.constraints()
        if stand_in:
            return torch.zeros(())
        with torch.no_grad():
            self.update_metrics(y_true, y_pred, sample_weight)
        return loss.detach().mean()

    @torch.no_grad()
    def gather_sparse_gradients(self) -> None:
        """Under torchrun: every process's gradient rows of the sparse parameters, concatenated
        in rank order (= the global batch's order) and averaged over processes as DDP averages
        the others. A dense gradient (an embedding regularizer's) is all-reduced."""
        world = torch.distributed.get_world_size()
        for param in self.sparse_parameters.values():
            grad = param.grad
            if grad is None:
                continue
            if not grad.is_sparse:
                torch.distributed.all_reduce(grad)
                grad.div_(world)
                continue
            indices, values = grad._indices()[0], grad._values()
            counts = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
            torch.distributed.all_gather(counts, torch.tensor([len(indices)]))
            size = max(int(c) for c in counts)
            padded_indices = torch.cat([indices, indices.new_zeros(size - len(indices))])
            padded_values = torch.cat([values, values.new_zeros((size - len(values), *values.shape[1:]))])
            all_indices = [torch.empty_like(padded_indices) for _ in range(world)]
            all_values = [torch.empty_like(padded_values) for _ in range(world)]
            torch.distributed.all_gather(all_indices, padded_indices)
            torch.distributed.all_gather(all_values, padded_values)
            indices = torch.cat([i[: int(c)] for i, c in zip(all_indices, counts)])
            values = torch.cat([v[: int(c)] for v, c in zip(all_values, counts)]) / world
            param.grad = torch.sparse_coo_tensor(indices[None], values, grad.shape, is_coalesced=False)

    @torch.no_grad()
    def test_step(self, inputs, y_true, sample_weight=None) -> torch.Tensor:
        self.model.eval()
        y_pred = self.keras_output(self.model(*inputs))
        loss = self.compute_loss(y_true, y_pred, sample_weight)
        self.update_metrics(y_true, y_pred, sample_weight)
        return loss.mean()

    @torch.no_grad()
    def update_metrics(self, y_true, y_pred, sample_weight=None) -> None:
        """Each metric sees its output; only weighted_metrics see the sample weights."""
        y_true, sample_weight = self.by_output(y_true), self.by_output(sample_weight, shared=True)
        for metric, name, weighted in self.routes:
            target, output = (y_true, y_pred) if name is None else (y_true[name], y_pred[name])
            if self.keras2_targets:
                target = keras2_match_rank(target, output)
            weight = sample_weight if name is None or sample_weight is None else sample_weight.get(name)
            if weighted and weight is not None:
                metric.update_state(target, output.detach(), weight)
            else:
                metric.update_state(target, output.detach())

    def reset_metrics(self) -> None:
        for metric in self.reported_metrics:
            metric.reset_state()
