"""Keras optimizer variables (`optimizer/vars/N` in a trained .keras, `optimizer_weights` in a
.h5) -> torch optimizer state.

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

import warnings
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


def read_optimizer_variables(path: str) -> list[np.ndarray] | H5OptimizerWeights:
    """`optimizer/vars/*` of a .keras archive, or the `optimizer_weights` of a tf.keras 2 .h5
    (empty when the file holds no optimizer state)."""
    if not zipfile.is_zipfile(path):
        return read_h5_optimizer_weights(path)
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


def check_variable_order(spec: TrainingSpec, weight_map: WeightMap, module: torch.nn.Module, model_config: dict) -> None:
    """Optimizers whose update depends on a variable's position (tf.keras 2 Nadam) need the
    torch parameters in Keras' model.trainable_variables order."""
    if spec.optimizer.ctor != "KerasNadamTF2":
        return
    what = "tf.keras 2 Nadam's update depends on each variable's position in model.trainable_variables, and "
    try:
        trainable, names = trainable_variables(weight_map, module, model_config)
    except UnsupportedTraining as exc:
        raise UnsupportedTraining(what + str(exc)) from None
    positions = [weight_map.tensors[n].variables for n in names]
    if any(len(v) != 1 for v in positions) or [v[0] for v in positions] != trainable:
        raise UnsupportedTraining(
            what + "the converted module's parameters are not in that order (or are not one-to-one copies of the "
            "Keras variables). Recompile the model with another optimizer (e.g. Adam) to train it in PyTorch"
        )


def keras_slots(optimizer: torch.optim.Optimizer) -> tuple[str, ...]:
    """The Keras slot names the torch optimizer's state is filled from."""
    if isinstance(optimizer, torch.optim.SGD):  # train.py's choice when it equals Keras' SGD
        return ("momentum",) if optimizer.param_groups[0]["momentum"] else ()
    return optimizer.slots


def as_torch_sgd_state(optimizer: torch.optim.Optimizer) -> None:
    """Keras' SGD keeps `m = momentum * m - lr * g` and adds it; torch.optim.SGD keeps
    `b = momentum * b + g` and subtracts `lr * b`: at a constant learning rate `b = -m / lr`."""
    if not isinstance(optimizer, torch.optim.SGD):
        return
    for group in optimizer.param_groups:
        group.pop("iterations", None)
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if "momentum" in state:
                state["momentum_buffer"] = -state.pop("momentum") / group["lr"]


def load_keras_optimizer_state(
    optimizer: torch.optim.Optimizer, spec: TrainingSpec, variables: list[np.ndarray], weight_map: WeightMap,
    module: torch.nn.Module, model_config: dict,
) -> int:
    """Fill `optimizer` (a Keras* optimizer over `module`'s trainable parameters) from Keras'
    saved variables; returns Keras' iteration count."""
    if isinstance(variables, H5OptimizerWeights):
        if not variables.keras3:
            return load_h5_optimizer_state(optimizer, spec, variables, weight_map, module, model_config)
        variables = [array for _, array in variables]  # Keras 3's .h5: optimizer.variables, as in a .keras
    elif spec.optimizer.ctor in ("KerasNadamTF2", "KerasLegacyAdagrad", "KerasLegacyRMSprop", "KerasLegacyNadam"):
        if len(variables) == 1 and int(variables[0]) == 0:  # saved before the first update
            return 0
        # tf.keras' .h5 holds the legacy optimizers' whole state, but not Nadam's momentum product.
        h5 = "" if spec.optimizer.ctor == "KerasNadamTF2" else ", or save the model as .h5 from tf.keras"
        raise UnsupportedTraining(
            f"the optimizer state in this .keras file was written by tf.keras 2 ({spec.optimizer.ctor[5:]}), whose "
            "variable layout is not mapped yet. Start from a fresh optimizer instead: "
            f"result.training_setup(load_optimizer_state=False){h5}"
        )
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
    as_torch_sgd_state(optimizer)
    return iterations


# -- tf.keras 2 .h5: `optimizer_weights` ------------------------------------------------------
#
# tf.keras 2 `model.save("x.h5")` writes the optimizer's weights under `optimizer_weights`, in
# the order of its `weight_names` attribute, with the model variable in each name:
#
#   tf_keras.optimizers.X (the 2.11+ optimizers, "Custom>X" in the config):
#       iteration:0, X/<slot>/<variable>:0   (tf_keras/src/optimizers/optimizer.py
#       add_variable_from_reference; EMA averages are the slot "average")
#   tf_keras.optimizers.legacy.X (OptimizerV2):
#       X/iter:0, X/<variable>/<slot>:0      (tf_keras/src/optimizers/legacy/optimizer_v2.py
#       add_slot; hyper-parameters are not saved)
#
# Each slot holds one array per trainable variable, in model.trainable_variables order. The
# learning rate is not saved (it comes from the config). Keras 3 keeps its optimizers' slots
# under other names: they map to the torch optimizer's slot names below.

_H5_SLOTS = {
    "KerasSGD": {"m": "momentum"},
    "KerasAdam": {"m": "momentum", "v": "velocity", "vhat": "velocity_hat"},
    "KerasAdamW": {"m": "momentum", "v": "velocity", "vhat": "velocity_hat"},
    "KerasRMSprop": {"velocity": "velocity", "momentum": "momentum", "average_gradient": "average_gradient"},
    "KerasAdagrad": {"accumulator": "accumulator"},
    "KerasAdadelta": {"accumulated_grad": "accumulated_grad", "accumulated_delta_var": "accumulated_delta_var"},
    "KerasAdamax": {"m": "momentum", "u": "norm"},
    "KerasFtrl": {"accumulator": "accumulator", "linear": "linear"},
    "KerasLion": {"m": "momentum"},
    # tf.keras does not save Nadam's momentum product: load_model() restarts it at 1 (see
    # KerasNadamTF2), and so does the torch optimizer.
    "KerasNadamTF2": {"m": "momentum", "v": "velocity"},
}
# Optimizers whose saved state is not the whole state.
_H5_REFUSED: dict[str, str] = {}
_H5_LEGACY_SLOTS = {
    "KerasSGD": {"momentum": "momentum"},
    "KerasAdam": {"m": "momentum", "v": "velocity", "vhat": "velocity_hat"},
    "KerasLegacyRMSprop": {"rms": "velocity", "momentum": "momentum", "mg": "average_gradient"},
    "KerasLegacyAdagrad": {"accumulator": "accumulator"},
    "KerasAdamax": {"m": "momentum", "v": "norm"},
    "KerasAdadelta": {"accum_grad": "accumulated_grad", "accum_var": "accumulated_delta_var"},
    "KerasFtrl": {"accumulator": "accumulator", "linear": "linear"},
    "KerasLegacyNadam": {"m": "momentum", "v": "velocity"},  # and its "momentum_cache" (not per variable)
}


class H5OptimizerWeights(list):
    """`(name, array)` pairs of a .h5 file's `optimizer_weights`, in saved order, and the
    `weight_names` of every top-level layer (to check which variable a slot belongs to)."""

    def __init__(self, items: list[tuple[str, np.ndarray]], layer_weight_names: dict[str, list[str]],
                 path: str) -> None:
        super().__init__(items)
        self.layer_weight_names = layer_weight_names
        self.path = path

    @property
    def keras3(self) -> bool:
        """Keras 3's legacy .h5 writer: `optimizer.variables` in order, as `<name>/iteration`,
        `<name>/learning_rate`, `<name>/<variable>_<slot>` (no ":0")."""
        return bool(self) and _strip(self[0][0]) == self[0][0] and self[0][0].endswith("/iteration")


def _strip(name: str) -> str:
    return name.removesuffix(":0")


def read_h5_optimizer_weights(path: str) -> H5OptimizerWeights:
    try:
        h5 = h5py.File(path, "r")
    except OSError:
        return H5OptimizerWeights([], {}, str(path))
    with h5:
        if "optimizer_weights" not in h5:
            return H5OptimizerWeights([], {}, str(path))
        group = h5["optimizer_weights"]
        names = [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
        items = [(name, np.asarray(group[name][()])) for name in names]
        layers: dict[str, list[str]] = {}
        weights = h5.get("model_weights", h5)
        for layer in weights:
            item = weights[layer]
            if hasattr(item, "attrs") and "weight_names" in item.attrs:
                layers[layer] = [_strip(n.decode("utf8") if isinstance(n, bytes) else str(n))
                                 for n in item.attrs["weight_names"]]
    return H5OptimizerWeights(items, layers, str(path))


def _h5_unsupported(what: str, spec: TrainingSpec, path: str) -> UnsupportedTraining:
    return UnsupportedTraining(
        f"the optimizer state saved in {path} ({spec.optimizer.ctor[5:]}) cannot be carried over: {what}. "
        "Start from a fresh optimizer instead: result.training_setup(load_optimizer_state=False), or save the "
        "Keras model with model.save(path, include_optimizer=False)"
    )


def load_h5_optimizer_state(
    optimizer: torch.optim.Optimizer, spec: TrainingSpec, weights: H5OptimizerWeights, weight_map: WeightMap,
    module: torch.nn.Module, model_config: dict,
) -> int:
    """Fill `optimizer` from a tf.keras 2 .h5's `optimizer_weights`; returns the iteration count."""
    name = spec.optimizer.ctor
    counters = [i for i, (n, _) in enumerate(weights) if _strip(n).split("/")[-1] in ("iteration", "iter")]
    if len(counters) != 1:
        raise _h5_unsupported("no iteration counter among its weights (not a tf.keras 2 optimizer)", spec, weights.path)
    counter_name = _strip(weights[counters[0]][0])
    legacy = counter_name.endswith("/iter")  # OptimizerV2's "<name>/iter"; the newer ones' "iteration"
    iterations = int(np.asarray(weights[counters[0]][1]).reshape(()))
    table = (_H5_LEGACY_SLOTS if legacy else _H5_SLOTS).get(name)
    kind = "tf.keras legacy" if legacy else "tf.keras"
    if len(weights) == 1 and iterations == 0:  # saved before the first update: a fresh optimizer
        return iterations
    if name in _H5_REFUSED:
        raise _h5_unsupported(_H5_REFUSED[name], spec, weights.path)
    if table is None:
        raise _h5_unsupported(f"the slots of {kind} {name[5:]} are not mapped yet", spec, weights.path)
    if not legacy:
        table = {**table, "average": "average"}
    slots: dict[str, list[tuple[str, np.ndarray]]] = {}
    for i, (full, array) in enumerate(weights):
        if i == counters[0]:
            continue
        parts = _strip(full).split("/")
        if legacy and name == "KerasLegacyNadam" and parts[1:] == ["momentum_cache"]:
            for g in optimizer.param_groups:
                g["momentum_cache"] = float(np.float32(array))
            continue
        if len(parts) < 3:
            raise _h5_unsupported(f"its weight {full!r} is not a per-variable slot", spec, weights.path)
        slot, variable = (parts[-1], "/".join(parts[1:-1])) if legacy else (parts[1], "/".join(parts[2:]))
        if slot not in table:
            raise _h5_unsupported(f"{kind} {name[5:]} slot {slot!r} has no counterpart in the torch optimizer",
                                  spec, weights.path)
        slots.setdefault(table[slot], []).append((variable, array))

    group = optimizer.param_groups[0]
    for g in optimizer.param_groups:
        g["iterations"] = iterations
        if name == "KerasNadamTF2":  # as tf_keras.models.load_model() rebuilds it
            g["u_product"], g["u_product_counter"] = 1.0, 1
    if not slots:  # saved before the first update: nothing but the counter
        return iterations
    if name == "KerasNadamTF2":
        warnings.warn(
            f"{weights.path}: tf.keras' .h5 does not store Nadam's momentum product (u_product), so training "
            f"resumed from it (after {iterations} steps) restarts the product at 1, as tf_keras.models.load_model() "
            "does, and drifts from the run that was not interrupted. For an exact continuation, keep training in "
            "PyTorch from train.py's checkpoints; to start fresh, use training_setup(load_optimizer_state=False)",
            UserWarning, stacklevel=2,
        )
    expected = set(keras_slots(optimizer)) | ({"average"} if group.get("use_ema") else set())
    if set(slots) != expected:
        raise _h5_unsupported(f"it holds the slots {sorted(slots)}, the torch optimizer expects {sorted(expected)}",
                              spec, weights.path)
    trainable, names = trainable_variables(weight_map, module, model_config)
    per_variable: dict[str, dict[int, np.ndarray]] = {}
    for slot, entries in slots.items():
        if len(entries) != len(trainable):
            raise _h5_unsupported(f"slot {slot!r} has {len(entries)} entries for {len(trainable)} trainable variables",
                                  spec, weights.path)
        for position, (variable, array) in zip(trainable, entries):
            v = weight_map.variables[position]
            known = weights.layer_weight_names.get(v.layer)
            if known is not None and v.index < len(known) and known[v.index] != variable:
                raise _h5_unsupported(f"slot {slot!r} of {variable!r} is where {known[v.index]!r} was expected",
                                      spec, weights.path)
            if tuple(np.shape(array)) != v.shape:
                raise _h5_unsupported(f"slot {slot!r} of {variable!r} has shape {np.shape(array)}, the variable "
                                      f"{v.shape}", spec, weights.path)
            per_variable.setdefault(slot, {})[position] = array
    params = dict(module.named_parameters())
    for slot, arrays in per_variable.items():
        tensors = weight_map.gather(arrays, names)
        for param_name in names:
            param = params[param_name]
            optimizer.state[param][slot] = torch.from_numpy(tensors[param_name]).to(param.device, param.dtype)
    as_torch_sgd_state(optimizer)
    return iterations


__all__ = ["MAX_MEMBER_BYTES", "H5OptimizerWeights", "check_variable_order", "load_h5_optimizer_state",
           "load_keras_optimizer_state", "read_optimizer_variables"]
