"""ConversionResult -> training objects (training_setup) and the files of a training run
(train.py, train_utils.py, optimizer.safetensors)."""

from __future__ import annotations

import warnings
from importlib import resources
from typing import Any

import torch

from tf2torch.frontends.keras.archive import load_keras_file
from tf2torch.training.activity import activity_taps
from tf2torch.training.compile_config import TrainingSpec, UnsupportedTraining, parse_training
from tf2torch.training.render_train import render_train_script, training_code, training_namespace
from tf2torch.training.state_transfer import (
    check_variable_order,
    load_keras_optimizer_state,
    read_optimizer_variables,
)
from tf2torch.training.train_script import explicit_script_covers, render_explicit_script
from tf2torch.training.weight_map import WeightMap, build_weight_map


class _Context:
    """Everything the training side needs from a conversion, computed once per result."""

    def __init__(self, result: Any) -> None:
        path = result._file_path or result.source_path
        source = load_keras_file(path)
        try:
            self.model_config = source.model_config
        finally:
            source.close()
        self.path = path
        self.spec: TrainingSpec = parse_training(result.compile_config, self.model_config, result.keras_major)
        self.weight_map: WeightMap = build_weight_map(path, result.state_dict, result.generated.structure)
        check_variable_order(self.spec, self.weight_map, result.module, self.model_config)
        builder = result.generated.builder
        # Keras layer -> where its output is seen in forward(), for activity regularizers.
        self.attrs = activity_taps(builder, result.graph, self.spec.activity_regularizers)
        for tap in self.attrs.values():  # a layer inside a block class: its path in the module
            tap.attr = result.generated.attr_path(tap.attr)
        self.optimizer_variables = read_optimizer_variables(path)


def _context(result: Any) -> _Context:
    cached = getattr(result, "_training_context", None)
    if cached is None:
        cached = _Context(result)
        result._training_context = cached
    return cached


def training_setup(result: Any, module: torch.nn.Module | None = None, load_optimizer_state: bool = True) -> Any:
    """A `Training` (optimizer with its schedule, loss_fn, metrics, regularization,
    constraints, train_step()) for `module` (default: result.module). With the optimizer
    state of a trained .keras, the optimizer continues where Keras stopped."""
    ctx = _context(result)
    module = result.module if module is None else module
    code = training_code(ctx.spec, ctx.weight_map, module, result.graph, ctx.attrs)
    training = training_namespace(code)["build_training"](module)
    if load_optimizer_state and ctx.optimizer_variables:
        load_keras_optimizer_state(training.optimizer, ctx.spec, ctx.optimizer_variables, ctx.weight_map, module,
                                   ctx.model_config)
    return training


def training_files(result: Any) -> dict[str, bytes]:
    """train.py (the explicit one with train_utils.py), plus optimizer.safetensors when the
    source file holds optimizer state."""
    ctx = _context(result)
    source_name = str(result.source_path).rsplit("/", 1)[-1]
    explicit = explicit_script_covers(ctx.spec, result.graph)
    if explicit:
        script = render_explicit_script(ctx.spec, ctx.weight_map, result.module, result.graph, result.class_name,
                                        source_name)
    else:
        script = render_train_script(ctx.spec, ctx.weight_map, result.module, result.graph, ctx.attrs,
                                     result.class_name, source_name)
    files = {"train.py": script.encode()}
    if explicit:
        files["train_utils.py"] = resources.files("tf2torch.training").joinpath("train_utils.py").read_bytes()
    if ctx.optimizer_variables:
        try:
            training = training_setup(result, module=result.module)
        except UnsupportedTraining as exc:  # train.py then starts from a fresh optimizer
            warnings.warn(f"optimizer.safetensors not written: {exc}", stacklevel=4)
        else:
            files["optimizer.safetensors"] = optimizer_safetensors(training.optimizer, result.module)
    return files


def optimizer_safetensors(optimizer: torch.optim.Optimizer, module: torch.nn.Module) -> bytes:
    """The same format train.py's save_checkpoint writes."""
    import json

    from tf2torch.codegen.safetensors_file import safetensors_bytes

    names = {id(p): n for n, p in module.named_parameters()}
    tensors = {}
    for param, state in optimizer.state.items():
        for slot, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{names[id(param)]}.{slot}"] = value.detach().cpu().numpy()
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    return safetensors_bytes(tensors, metadata={"param_groups": json.dumps(groups), "epoch": "0"})


__all__ = ["training_files", "training_setup"]
