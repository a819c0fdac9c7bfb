"""The model config (config.json / model_config) is validated before any layer is imported.

Structure (a model is a dict with a class name, a list of layer dicts, each named once,
node lists of the right shape), sizes (JSON nesting, number of layers, declared input
shapes) and the values of the keys that decide a layer's computation and its weights'
shapes (`units`, `kernel_size`, `padding`, ...), for every layer class, including ones
registered later: a key means the same thing in every Keras layer that has it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tf2torch.errors import BadModelFile
from tf2torch.limits import Limits

MODEL_CLASSES = {"Functional", "Model", "Sequential"}

# Keys whose value is a positive int or a tuple of them (None allowed where Keras defaults it).
POSITIVE_INTS = {"units", "filters", "kernel_size", "dilation_rate", "pool_size", "depth_multiplier", "groups",
                 "num_heads", "key_dim", "input_dim", "output_dim"}
POSITIVE_INTS_OR_NONE = {"strides", "value_dim"}
BOOLEANS = {"use_bias", "return_sequences", "return_state", "go_backwards", "stateful", "unroll", "trainable",
            "mask_zero"}
# Booleans in normalization layers only (Rescaling's `scale` is a number).
NORMALIZATION_BOOLEANS = {"center", "scale"}
CHOICES = {"data_format": (None, "channels_last", "channels_first")}
# Numbers (finite); the second set may not be negative (None allowed for max_value).
NUMBERS = {"threshold", "momentum", "stddev", "alpha"}
NON_NEGATIVE = {"max_value", "negative_slope", "epsilon"}
PADDING_MODES = {"valid", "same", "causal", "full"}


def parse_json(data: bytes | str, where: str, limits: Limits, *, check_depth: bool = True) -> dict:
    """A JSON object from untrusted bytes: UTF-8, valid, bounded nesting (a model config
    checks its nesting in check_model_config, after the cheaper layer count)."""
    try:
        text = data.decode("utf8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise BadModelFile(f"{where} is not UTF-8 text") from None
    if len(text) > limits.max_config_bytes:
        raise BadModelFile(f"{where} is larger than the limit (Limits.max_config_bytes in tf2torch.limits)")
    try:
        value = json.loads(text)
    except RecursionError:
        raise BadModelFile(f"{where} is nested too deeply (more than {limits.max_json_depth} levels)") from None
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip()) - 1
        problem = "is truncated" if truncated else f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise BadModelFile(f"{where} {problem}") from None
    except ValueError as exc:  # e.g. an integer literal with more digits than Python accepts
        raise BadModelFile(f"{where} is not valid JSON ({exc})") from None
    if check_depth:
        check_json_depth(value, where, limits)
    if not isinstance(value, dict):
        raise BadModelFile(f"{where} must hold a JSON object, not {type(value).__name__}")
    return value


def check_json_depth(value: Any, where: str, limits: Limits) -> None:
    if json_depth(value, limits.max_json_depth) > limits.max_json_depth:
        raise BadModelFile(f"{where} is nested too deeply (more than {limits.max_json_depth} levels)")


def json_depth(value: Any, stop_after: int) -> int:
    """Nesting depth of parsed JSON (iterative: a deep document must not exhaust the stack)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        deepest = max(deepest, depth)
        if deepest > stop_after:
            return deepest
        stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def check_model_config(config: dict, file: str, limits: Limits) -> None:
    """Raise BadModelFile naming the place (model, layer, key) of the first problem."""
    if _count_layers(config) > limits.max_layers:
        raise BadModelFile(f"{file}: the model has more than {limits.max_layers} layers (raise the limit with --max-layers)")
    check_json_depth(config, f"{file}: the model config", limits)
    counter = [0]
    _check_model(config, file, limits, counter, "the model")


def _count_layers(model: Any) -> int:
    """Layers of the model and its nested models (cheap: before the full checks)."""
    body = model.get("config") if isinstance(model, dict) else None
    layers = body.get("layers") if isinstance(body, dict) else None
    if not isinstance(layers, list):
        return 0
    nested = sum(_count_layers(layer) for layer in layers
                 if isinstance(layer, dict) and layer.get("class_name") in MODEL_CLASSES)
    return len(layers) + nested


def _fail(file: str, where: str, problem: str) -> BadModelFile:
    return BadModelFile(f"{file}: the model config is invalid: {where}: {problem}")


def _check_model(model: Any, file: str, limits: Limits, counter: list[int], where: str) -> None:
    if not isinstance(model, dict):
        raise _fail(file, where, f"must be an object, got {type(model).__name__}")
    class_name = model.get("class_name")
    if not isinstance(class_name, str):
        raise _fail(file, where, f"'class_name' must be a string, got {class_name!r:.60}")
    body = model.get("config")
    if class_name not in MODEL_CLASSES:
        return  # a subclassed model or a keras_hub backbone: checked where it is imported
    if not isinstance(body, dict):
        raise _fail(file, where, f"'config' must be an object, got {type(body).__name__}")
    layers = body.get("layers")
    if not isinstance(layers, list):
        raise _fail(file, where, f"'layers' must be a list, got {type(layers).__name__}")
    names: set[str] = set()
    for index, layer in enumerate(layers):
        counter[0] += 1
        if counter[0] > limits.max_layers:
            raise BadModelFile(f"{file}: the model has more than {limits.max_layers} layers (raise the limit with --max-layers)")
        name = _check_layer(layer, index, file, limits, class_name == "Sequential", where)
        if name in names:
            raise _fail(file, where, f"two layers are named {name!r}")
        names.add(name)
        if layer["class_name"] in MODEL_CLASSES:
            _check_model(layer, file, limits, counter, f"nested model {name!r}")
    if class_name != "Sequential":
        for key in ("input_layers", "output_layers"):
            spec = body.get(key)
            if not isinstance(spec, (list, dict)) or not spec:
                raise _fail(file, where, f"{key!r} must be a non-empty list, got {spec!r:.60}")


def _check_layer(layer: Any, index: int, file: str, limits: Limits, sequential: bool, model: str) -> str:
    if not isinstance(layer, dict):
        raise _fail(file, f"{model}, layer #{index}", f"must be an object, got {type(layer).__name__}")
    config = layer.get("config")
    name = layer.get("name") or (config.get("name") if isinstance(config, dict) else None)
    label = f"layer {name!r}" if isinstance(name, str) else f"{model}, layer #{index}"
    if not isinstance(name, str) or not name:
        raise _fail(file, label, f"has no name (got {name!r:.60})")
    class_name = layer.get("class_name")
    if not isinstance(class_name, str) or not class_name:
        raise _fail(file, label, f"'class_name' must be a string, got {class_name!r:.60}")
    label = f"layer {name!r} ({class_name})"
    if not isinstance(config, dict):
        raise _fail(file, label, f"'config' must be an object, got {type(config).__name__}")
    if not isinstance(config.get("name", ""), str):
        raise _fail(file, label, f"config key 'name' must be a string, got {config['name']!r:.60}")
    nodes = layer.get("inbound_nodes", [])
    if not isinstance(nodes, list) or not all(isinstance(node, (dict, list)) for node in nodes):
        raise _fail(file, label, f"'inbound_nodes' must be a list of calls, got {nodes!r:.60}")
    if not sequential and class_name != "InputLayer" and "inbound_nodes" not in layer:
        raise _fail(file, label, "'inbound_nodes' is missing (which tensors does the layer take?)")
    for key, value in config.items():
        if key in NORMALIZATION_BOOLEANS and "Normalization" in class_name and not isinstance(value, bool):
            raise _fail(file, label, f"config key {key!r} must be true or false, got {value!r:.60}")
        problem = _value_problem(key, value, limits)
        if problem:
            raise _fail(file, label, f"config key {key!r} {problem}, got {value!r:.60}")
    return name


def _value_problem(key: str, value: Any, limits: Limits) -> str | None:
    if key in POSITIVE_INTS or (key in POSITIVE_INTS_OR_NONE and value is not None):
        if not _positive_ints(value):
            return "must be a positive integer (or a tuple of them)"
    elif key in BOOLEANS:
        if not isinstance(value, bool):
            return "must be true or false"
    elif key in CHOICES:
        if not any(value == choice and type(value) is type(choice) for choice in CHOICES[key]):
            return f"must be one of {sorted(c for c in CHOICES[key] if c)}"
    elif key in NUMBERS or (key in NON_NEGATIVE and not (key == "max_value" and value is None)):
        if not _finite_number(value):
            return "must be a finite number"
        if key in NON_NEGATIVE and value < 0:
            return "must not be negative"
    elif key == "padding" and isinstance(value, str):
        if value.lower() not in PADDING_MODES:
            return f"must be one of {sorted(PADDING_MODES)}"
    elif key == "padding" and not _ints(value, allow_negative=False):
        return "must be a padding mode or non-negative integers"
    elif key in ("batch_shape", "batch_input_shape") and value is not None:
        return _shape_problem(value, limits)
    elif key == "axis" and not (value is None or _ints(value, allow_negative=True)):
        return "must be an integer axis (or a list of them)"
    elif key == "activation" and not (value is None or isinstance(value, (str, dict))):
        return "must be an activation name"
    elif key == "rate" and not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1):
        return "must be a number between 0 and 1"
    return None


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_ints(value: Any) -> bool:
    items = value if isinstance(value, (list, tuple)) else [value]
    return bool(items) and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**31 for v in items)


def _ints(value: Any, allow_negative: bool) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_ints(v, allow_negative) for v in value)
    return isinstance(value, int) and not isinstance(value, bool) and (allow_negative or value >= 0)


def _shape_problem(shape: Any, limits: Limits) -> str | None:
    if not isinstance(shape, (list, tuple)) or not shape:
        return "must be a list of dimensions"
    if not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in shape):
        return "must hold non-negative integers or null"
    known = [d for d in shape[1:] if d is not None]
    if known and math.prod(known) > limits.max_input_elements:
        return (f"declares a sample of {math.prod(known):.3g} elements, more than {limits.max_input_elements:.3g} "
                "(limit: Limits.max_input_elements in tf2torch.limits)")
    return None
