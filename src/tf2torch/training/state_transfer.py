"""Keras optimizer variables (`optimizer/vars/N` in a trained .keras) -> torch optimizer state.

Keras 3 stores `self.variables` in creation order (keras/src/optimizers/base_optimizer.py and
each optimizer's build()):

    iterations, [learning_rate unless it is a schedule], [EMA averages, one per variable],
    then each add_optimizer_variables() call: for every trainable variable (in
    model.trainable_variables order) one slot per name given in that call (interleaved),
    [Nadam: u_product last].

The slots are carried into torch layout through the WeightMap (the same transposes and
reorders as the weights themselves).
"""

from __future__ import annotations

import zipfile

import h5py
import numpy as np
import torch

from tf2torch.frontends.keras.archive import MAX_MEMBER_BYTES, _extract_member
from tf2torch.training.compile_config import TrainingSpec, UnsupportedTraining
from tf2torch.training.weight_map import WeightMap, keras_layer_order


def slot_calls(spec: TrainingSpec) -> list[list[str]]:
    """The slot names of each add_optimizer_variables() call, in order."""
    name = spec.optimizer.ctor
    kw = spec.optimizer.kwargs
    if name == "KerasSGD":
        return [["momentum"]] if kw.get("momentum") else []
    if name in ("KerasAdam", "KerasAdamW"):
        return [["momentum", "velocity"]] + ([["velocity_hat"]] if kw.get("amsgrad") else [])
    if name == "KerasRMSprop":
        calls = [["velocity"]]
        if kw.get("momentum", 0) > 0:
            calls.append(["momentum"])
        if kw.get("centered"):
            calls.append(["average_gradient"])
        return calls
    table = {
        "KerasAdagrad": [["accumulator"]],
        "KerasAdadelta": [["accumulated_grad", "accumulated_delta_var"]],
        "KerasAdamax": [["momentum", "norm"]],
        "KerasNadam": [["momentum", "velocity"]],
        "KerasLion": [["momentum"]],
        "KerasFtrl": [["accumulator", "linear"]],
    }
    return table[name]


def read_optimizer_variables(path: str) -> list[np.ndarray]:
    """`optimizer/vars/*` of a .keras archive ([] when it holds no optimizer state)."""
    if not zipfile.is_zipfile(path):
        return []
    with zipfile.ZipFile(path) as archive:
        if "model.weights.h5" not in archive.namelist():
            return []
        weights_file = _extract_member(archive, "model.weights.h5", path)
    try:
        with h5py.File(weights_file, "r") as h5:
            if "optimizer" not in h5 or "vars" not in h5["optimizer"]:
                return []
            group = h5["optimizer"]["vars"]
            return [np.asarray(group[k][()]) for k in sorted(group.keys(), key=int)]
    finally:
        import os

        os.unlink(weights_file)


def trainable_variables(weight_map: WeightMap, module: torch.nn.Module, model_config: dict) -> tuple[list[int], list[str]]:
    """Keras' model.trainable_variables (as WeightMap positions) and the torch parameters
    that hold them."""
    params = dict(module.named_parameters())
    names = [n for n, p in params.items() if p.requires_grad]
    unmapped = [n for n in names if n not in weight_map.tensors]
    if unmapped:
        raise UnsupportedTraining(
            f"optimizer state cannot be carried over: torch parameters {unmapped} are not copies of Keras variables"
        )
    used = {v for n in names for v in weight_map.tensors[n].variables}
    order = {layer: i for i, layer in enumerate(keras_layer_order(model_config))}
    ranked = sorted(used, key=lambda i: (order.get(weight_map.variables[i].layer, len(order)), weight_map.variables[i].index))
    return ranked, names


def load_keras_optimizer_state(
    optimizer: torch.optim.Optimizer, spec: TrainingSpec, variables: list[np.ndarray], weight_map: WeightMap,
    module: torch.nn.Module, model_config: dict,
) -> int:
    """Fill `optimizer` (a Keras* optimizer over `module`'s trainable parameters) from Keras'
    saved variables; returns Keras' iteration count."""
    trainable, names = trainable_variables(weight_map, module, model_config)
    n = len(trainable)
    calls = slot_calls(spec)
    has_lr_variable = not isinstance(spec.optimizer.kwargs.get("learning_rate"), dict) and spec.schedule is None
    use_ema = bool(spec.optimizer.kwargs.get("use_ema"))
    expected = 1 + int(has_lr_variable) + n * (int(use_ema) + sum(len(c) for c in calls))
    expected += int(spec.optimizer.ctor == "KerasNadam")
    if len(variables) == 1 + int(has_lr_variable):  # saved before the optimizer was built: no slots yet
        calls, use_ema, expected = [], False, len(variables)
    if len(variables) != expected:
        raise UnsupportedTraining(
            f"the saved optimizer has {len(variables)} variables, expected {expected} for "
            f"{spec.optimizer.ctor[5:]} over {n} trainable variables"
        )
    iterations = int(variables[0])
    position = 1
    group = optimizer.param_groups[0]
    if has_lr_variable:
        group["lr"] = float(variables[1])
        position = 2
    slots: dict[str, dict[int, np.ndarray]] = {}
    if use_ema:
        slots["average"] = dict(zip(trainable, variables[position : position + n]))
        position += n
    for call in calls:
        for var in trainable:
            for slot in call:
                slots.setdefault(slot, {})[var] = variables[position]
                position += 1
    if spec.optimizer.ctor == "KerasNadam" and calls:
        group["u_product"] = float(np.float32(variables[position]))
    params = dict(module.named_parameters())
    per_slot = {slot: weight_map.gather(arrays, names) for slot, arrays in slots.items()}
    for name in names:
        param = params[name]
        state = optimizer.state[param]
        for slot, tensors in per_slot.items():
            state[slot] = torch.from_numpy(tensors[name]).to(param.device, param.dtype)
    for g in optimizer.param_groups:
        g["iterations"] = iterations
    return iterations


__all__ = ["MAX_MEMBER_BYTES", "load_keras_optimizer_state", "read_optimizer_variables"]
