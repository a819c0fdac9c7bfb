"""Recurrent layers and masking: SimpleRNN, LSTM, GRU, Bidirectional, RNN(cell),
StackedRNNCells, TimeDistributed, ConvLSTM1D/2D/3D, Masking, and the masked forms of
GlobalAveragePooling1D.

An RNN layer becomes one `rnn` node. `attrs["directions"]` holds one dict per direction
(Bidirectional: forward, backward) with the cell kind and its options; params are named
`<direction>/kernel`, `<direction>/recurrent_kernel`, `<direction>/bias`, in the Keras layout.
Node inputs: `x`, then the mask (if `attrs["has_mask"]`), then the initial states.
Node outputs: the output(s) (Bidirectional merge_mode=None: two), then the final states.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from tf2torch.errors import BadModelFile
from tf2torch.frontends.keras.archive import read_vars_group, to_snake_case
from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.importers.activations import activation_name
from tf2torch.frontends.keras.importers.op_nodes import import_op_node
from tf2torch.frontends.keras.masking import call_mask, mask_spec
from tf2torch.frontends.keras.op_calls import KERAS_OPS_REGISTERED_ELSEWHERE
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.frontends.keras.weight_check import check_weights, conv_lstm_shapes, recurrent_cell_shapes
from tf2torch.ir import Param, TensorSpec, Value

CELL_KINDS = {
    "LSTM": "lstm", "GRU": "gru", "SimpleRNN": "simple_rnn",
    "LSTMCell": "lstm", "GRUCell": "gru", "SimpleRNNCell": "simple_rnn",
}
STATES = {"lstm": 2, "gru": 1, "simple_rnn": 1}
# Activations a recurrent cell may use (IR activation names; see converters/recurrent.py).
RNN_ACTIVATIONS = {
    "tanh", "sigmoid", "relu", "linear", "hard_sigmoid", "elu", "selu", "softplus", "softsign",
    "swish", "silu", "relu6", "exponential", "gelu", "mish", "hard_silu", "hard_swish",
}


def _activation(ctx: LayerContext, spec: Any) -> str:
    name = activation_name(spec)
    if name not in RNN_ACTIVATIONS:
        raise ctx.unsupported(f"activation {name!r} inside a recurrent cell")
    if name == "hard_sigmoid" and ctx.keras_major == 2:
        return "hard_sigmoid_k2"  # Keras 2: clip(0.2x + 0.5, 0, 1)
    return {"swish": "silu", "hard_swish": "hard_silu", "exponential": "exp"}.get(name, name)


def _cell_options(ctx: LayerContext, class_name: str, cfg: dict) -> dict[str, Any]:
    kind = CELL_KINDS.get(class_name)
    if kind is None:
        raise ctx.unsupported(f"a recurrent cell of class {class_name!r}")
    options: dict[str, Any] = {
        "kind": kind,
        "units": int(cfg["units"]),
        "activation": _activation(ctx, cfg.get("activation", "tanh")),
        "recurrent_activation": _activation(ctx, cfg.get("recurrent_activation", "sigmoid")) if kind != "simple_rnn" else None,
        "use_bias": bool(cfg.get("use_bias", True)),
        "reset_after": bool(cfg.get("reset_after", True)) if kind == "gru" else False,
        "dropout": float(cfg.get("dropout", 0.0) or 0.0),
        "recurrent_dropout": float(cfg.get("recurrent_dropout", 0.0) or 0.0),
    }
    return options


def _layer_options(ctx: LayerContext, cfg: dict) -> dict[str, Any]:
    if cfg.get("time_major"):
        raise ctx.unsupported("time_major=True")
    return {
        "return_sequences": bool(cfg.get("return_sequences", False)),
        "return_state": bool(cfg.get("return_state", False)),
        "go_backwards": bool(cfg.get("go_backwards", False)),
        "stateful": bool(cfg.get("stateful", False)),
        "zero_output_for_mask": bool(cfg.get("zero_output_for_mask", False)),
    }


def _cell_weight_groups(group: Any, path: list[str]) -> list[np.ndarray]:
    for key in path:
        if group is None or key not in group:
            return []
        group = group[key]
    return read_vars_group(group) if group is not None else []


def _weights(ctx: LayerContext, path: list[str]) -> list[np.ndarray]:
    """All weights of the layer: flat (legacy .h5) or from sub-objects (.keras archives)."""
    flat = ctx.weights()
    if flat:
        return flat
    if ctx.reader is not None and hasattr(ctx.reader, "group"):
        return _cell_weight_groups(ctx.reader.group(ctx.entry.name), path)
    return []


def _cell_params(ctx: LayerContext, cell: dict, weights: list[np.ndarray], input_size: int, prefix: str,
                 part: str = "") -> dict[str, Param]:
    expected = recurrent_cell_shapes(cell["kind"], cell["units"], input_size, cell["use_bias"], cell["reset_after"])
    weights = check_weights(ctx, weights, expected, part)
    kernel, recurrent = weights[0], weights[1]
    params = {
        f"{prefix}/kernel": ctx.param(kernel, "IO"),
        f"{prefix}/recurrent_kernel": ctx.param(recurrent, "IO"),
    }
    if cell["use_bias"]:
        params[f"{prefix}/bias"] = ctx.param(weights[2], "O")
    return params


def _states_in(ctx: LayerContext) -> list[Value]:
    """Initial states: Keras 3 passes `initial_state=[...]`; Keras 2 appends them to the inputs."""
    if "initial_state" in ctx.tensor_kwargs:
        return list(ctx.tensor_kwargs["initial_state"])
    return list(ctx.inputs[1:])


def _rnn_call_mask(ctx: LayerContext) -> Value | None:
    """The mask the recurrence runs with. Keras 3 fills a call's `mask` from its input's mask
    only when the call has one tensor argument (layer.py, "Populate mask argument(s)"): with
    `initial_state=` tensors an implicit mask is ignored (the outputs still carry it on).
    tf_keras collects it from the first input either way."""
    explicit = ctx.tensor_kwargs.get("mask")
    if explicit:
        return explicit[0]
    if ctx.keras_major >= 3 and _states_in(ctx):
        return None
    return call_mask(ctx)


def _add_rnn_node(
    ctx: LayerContext, directions: list[dict], params: dict[str, Param], layer: dict, merge_mode: str | None
) -> list[Value]:
    x = ctx.inputs[0]
    if x.rank != 3:
        raise ctx.unsupported(f"a recurrent layer on a rank-{x.rank} input")
    mask = _rnn_call_mask(ctx)
    passed_mask = call_mask(ctx)
    states = _states_in(ctx)
    kind = directions[0]["kind"]
    n_states = STATES[kind] * len(directions)
    if states and len(states) != n_states:
        raise ctx.unsupported(f"{len(states)} initial states (expected {n_states})")
    if layer["stateful"] and states:
        raise ctx.unsupported("initial states on a stateful layer")
    if layer["stateful"] and x.spec.shape[0] is None:
        raise ctx.unsupported("stateful=True without a fixed batch size")
    batch, steps = x.spec.shape[0], x.spec.shape[1]
    units = [d["units"] for d in directions]
    seq = layer["return_sequences"]

    def out_shape(u: int) -> tuple:
        return (batch, steps, u) if seq else (batch, u)

    if len(directions) == 1 or merge_mode is None:
        out_specs = [TensorSpec(out_shape(u)) for u in units]
    elif merge_mode == "concat":
        out_specs = [TensorSpec(out_shape(sum(units)))]
    else:
        out_specs = [TensorSpec(out_shape(units[0]))]
    state_specs = [TensorSpec((batch, u)) for u in units for _ in range(STATES[kind])]
    attrs = {
        "directions": directions,
        **layer,
        "merge_mode": merge_mode,
        "bidirectional": len(directions) == 2,
        "has_mask": mask is not None,
        "n_initial_states": len(states),
        "input_size": int(x.spec.shape[-1]),
        "n_outputs": len(out_specs),
    }
    state_specs_used = state_specs if layer["return_state"] else []
    if mask is not None and mask.spec.dtype != "bool":  # an explicit numeric mask: Keras casts it
        mask = ctx.add("bool_op", [mask], [TensorSpec(mask.spec.shape, "bool")], {"fn": "not_equal", "value": 0}).outputs[0]
    inputs = [x] + ([mask] if mask is not None else []) + states
    node = ctx.add("rnn", inputs, out_specs + state_specs_used, attrs, params)
    names = ["output"] if len(out_specs) == 1 else ["forward", "backward"]
    state_names = {"lstm": ["h", "c"], "gru": ["h"], "simple_rnn": ["h"]}[kind]
    if layer["return_state"]:
        if len(directions) == 2:
            names += [f"{d}_{s}" for d in ("forward", "backward") for s in state_names]
        else:
            names += state_names
    if len(node.outputs) > 1:
        for value, suffix in zip(node.outputs, names):
            value.name = f"{ctx.name}_{suffix}"
    # RNN.compute_mask / Bidirectional.compute_mask: the mask passes to sequence outputs only.
    out_mask = passed_mask if (seq and passed_mask is not None and passed_mask.rank == 2) else None
    ctx.set_output_masks([out_mask] * len(out_specs) + [None] * len(state_specs_used))
    return list(node.outputs)


@register_importer("LSTM", "GRU", "SimpleRNN")
def import_recurrent(ctx: LayerContext) -> list[Value]:
    cfg = ctx.config
    cell = _cell_options(ctx, ctx.class_name, cfg)
    layer = _layer_options(ctx, cfg)
    input_size = int(ctx.inputs[0].spec.shape[-1])
    params = _cell_params(ctx, cell, _weights(ctx, ["cell", "vars"]), input_size, "forward")
    cell["go_backwards"] = layer["go_backwards"]
    return _add_rnn_node(ctx, [cell], params, layer, None)


@register_importer("Bidirectional")
def import_bidirectional(ctx: LayerContext) -> list[Value]:
    cfg = ctx.config
    inner = cfg["layer"]
    backward_raw = cfg.get("backward_layer") or inner
    fwd_cfg, bwd_cfg = inner["config"], backward_raw["config"]
    fwd = _cell_options(ctx, inner["class_name"], fwd_cfg)
    bwd = _cell_options(ctx, backward_raw["class_name"], bwd_cfg)
    if fwd["kind"] != bwd["kind"]:
        raise ctx.unsupported("a Bidirectional layer whose two directions are different cell kinds")
    layer = _layer_options(ctx, fwd_cfg)
    if bool(bwd_cfg.get("return_sequences", False)) != layer["return_sequences"]:
        raise ctx.unsupported("Bidirectional directions with different return_sequences")
    # Keras builds the backward layer with go_backwards flipped and zero_output_for_mask =
    # return_sequences for both (rnn/bidirectional.py).
    fwd["go_backwards"] = layer["go_backwards"]
    bwd["go_backwards"] = not layer["go_backwards"]
    layer["zero_output_for_mask"] = layer["return_sequences"]
    merge_mode = cfg.get("merge_mode", "concat")
    if merge_mode not in ("concat", "sum", "mul", "ave", None):
        raise ctx.unsupported(f"merge_mode={merge_mode!r}")
    input_size = int(ctx.inputs[0].spec.shape[-1])
    weights = ctx.weights()
    if weights:
        half = len(weights) // 2
        fw, bw = weights[:half], weights[half:]
    else:
        fw = _weights(ctx, ["forward_layer", "cell", "vars"])
        bw = _weights(ctx, ["backward_layer", "cell", "vars"])
    params = _cell_params(ctx, fwd, fw, input_size, "forward", "forward layer")
    params.update(_cell_params(ctx, bwd, bw, input_size, "backward", "backward layer"))
    return _add_rnn_node(ctx, [fwd, bwd], params, layer, merge_mode)


# -- masks ------------------------------------------------------------------------------


@register_importer("Masking")
def import_masking(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    value = float(ctx.config.get("mask_value", 0.0))
    op = "channel_masking" if x.rank >= 4 else "masking"  # frames: computed channels-first in torch
    node = ctx.add(op, [x], [x.spec, mask_spec(x)], {"mask_value": value, "keras_major": ctx.keras_major})
    out, mask = node.outputs
    out.name, mask.name = ctx.name, f"{ctx.name}_mask"
    ctx.set_output_masks([mask])
    return [out]


def import_masked_global_average_pooling(ctx: LayerContext) -> list[Value]:
    """GlobalAveragePooling1D(x, mask): the mean over the unmasked steps (called by pooling.py)."""
    x = ctx.inputs[0]
    mask = call_mask(ctx)
    if (ctx.config.get("data_format") or "channels_last") != "channels_last":
        raise ctx.unsupported("data_format='channels_first'")
    keepdims = bool(ctx.config.get("keepdims", False))
    shape = (x.spec.shape[0], 1, x.spec.shape[-1]) if keepdims else (x.spec.shape[0], x.spec.shape[-1])
    return ctx.add("masked_global_avg_pool", [x, mask], [TensorSpec(shape)], {"keepdims": keepdims}).outputs


# -- Keras 3 mask computations written into functional configs ---------------------------
# Keras 3 records the mask a layer receives as an explicit `mask=` argument, computed by op
# entries (Embedding: not_equal; Masking: not_equal + any; merges: logical_or, expand_dims,
# zeros_like, concatenate). They become `bool_op` nodes.

BOOL_OPS = {
    "ops.NotEqual": "not_equal", "ops.Any": "any", "ops.All": "all", "ops.LogicalOr": "logical_or",
    "ops.LogicalAnd": "logical_and", "ops.LogicalNot": "logical_not", "ops.ExpandDims": "expand_dims",
    "ops.ZerosLike": "zeros_like", "ops.OnesLike": "ones_like", "ops.Concatenate": "concatenate",
    "ops.Squeeze": "squeeze",
}


def _broadcast_shape(a: tuple, b: tuple) -> tuple:
    rank = max(len(a), len(b))
    a = (1,) * (rank - len(a)) + tuple(a)
    b = (1,) * (rank - len(b)) + tuple(b)
    return tuple(x if y == 1 else (y if x == 1 else (x if x is not None else y)) for x, y in zip(a, b))


def _axes(axis: Any) -> tuple[int, ...] | None:
    if axis is None:
        return None
    return tuple(int(a) for a in axis) if isinstance(axis, (list, tuple)) else (int(axis),)


@register_importer(*BOOL_OPS)
def import_bool_op(ctx: LayerContext) -> list[Value]:
    if ctx.class_name in KERAS_OPS_REGISTERED_ELSEWHERE and any(v.spec.dtype != "bool" for v in ctx.inputs):
        return import_op_node(ctx)  # concatenate / expand_dims / squeeze on data, not on a mask
    fn = BOOL_OPS[ctx.class_name]
    cfg = ctx.config
    args = ctx.arg_values()
    tensors = [a for a in args if isinstance(a, Value)]
    if fn == "concatenate":
        tensors = list(ctx.inputs)
    x = tensors[0]
    attrs: dict[str, Any] = {"fn": fn}
    shape = x.spec.shape
    dtype = "bool"
    if fn == "not_equal":
        if len(tensors) == 2:
            shape = _broadcast_shape(tensors[0].spec.shape, tensors[1].spec.shape)
        else:
            constants = [a for a in args if not isinstance(a, Value)]
            if len(constants) != 1 or not isinstance(constants[0], (int, float)):
                raise ctx.unsupported("not_equal with a non-scalar constant")
            attrs["value"] = constants[0]
    elif fn in ("any", "all"):
        axes = _axes(cfg.get("axis"))
        keep = bool(cfg.get("keepdims", False))
        producer = x.producer
        if (fn == "any" and axes is not None and {a % x.rank for a in axes} == {x.rank - 1}
                and not keep and producer is not None and producer.op == "bool_op"
                and producer.attrs.get("fn") == "not_equal" and "value" in producer.attrs):
            # Masking's mask, written out by Keras 3 as any(x != mask_value, axis=-1): reuse
            # the Masking layer's own mask; on frames compute it channels-first (no permute).
            source, value = producer.inputs[0], float(producer.attrs["value"])
            for node in ctx.graph.consumers(source):
                if node.op in ("masking", "channel_masking") and node.attrs["mask_value"] == value:
                    return [node.outputs[1]]
            if x.rank >= 4:
                return ctx.add("channel_mask", [source], [TensorSpec(shape[:-1], "bool")], {"mask_value": value}).outputs
        attrs.update(axes=axes, keepdims=keep)
        if axes is None:
            shape = (1,) * x.rank if keep else ()
        else:
            norm = {a % x.rank for a in axes}
            shape = tuple(1 if i in norm else d for i, d in enumerate(shape) if keep or i not in norm)
    elif fn in ("logical_or", "logical_and"):
        shape = _broadcast_shape(tensors[0].spec.shape, tensors[1].spec.shape)
    elif fn == "expand_dims":
        axes = _axes(cfg.get("axis"))
        if axes is None or len(axes) != 1:
            raise ctx.unsupported("expand_dims over several axes")
        axis = axes[0] % (x.rank + 1)
        attrs["axis"] = axis
        shape = shape[:axis] + (1,) + shape[axis:]
    elif fn in ("zeros_like", "ones_like"):
        dtype = str(cfg.get("dtype") or x.spec.dtype)
        if dtype != "bool":
            raise ctx.unsupported(f"{fn} with dtype {dtype!r} in a mask computation")
    elif fn == "concatenate":
        axis = int(cfg.get("axis", 0)) % x.rank
        attrs["axis"] = axis
        sizes = [t.spec.shape[axis] for t in tensors]
        total = None if any(s is None for s in sizes) else sum(sizes)
        shape = shape[:axis] + (total,) + shape[axis + 1:]
        dtype = x.spec.dtype
    elif fn == "squeeze":
        axes = _axes(cfg.get("axis"))
        if axes is None:
            raise ctx.unsupported("squeeze without an axis")
        norm = {a % x.rank for a in axes}
        attrs["axes"] = tuple(sorted(norm))
        shape = tuple(d for i, d in enumerate(shape) if i not in norm)
        dtype = x.spec.dtype
    elif fn == "logical_not":
        pass
    return ctx.add("bool_op", tensors, [TensorSpec(shape, dtype)], attrs).outputs


# -- RNN(cell), StackedRNNCells, TimeDistributed ---------------------------------------------


@register_importer("RNN")
def import_rnn_wrapper(ctx: LayerContext) -> list[Value]:
    """keras.layers.RNN around LSTMCell / GRUCell / SimpleRNNCell, or StackedRNNCells of
    them: one `rnn` node per cell, the inner ones returning sequences (at a masked step every
    cell's state is carried, which is what stacked layers with the same mask do).

    StackedRNNCells' states are a list per cell (`initial_state=[[h1, c1], h2]`; return_state
    gives `out, [h1, c1], h2`); configs flatten both, in cell order, which is how each cell's
    node takes and returns them. stateful=True: every cell's loop keeps its own states.
    go_backwards: the first cell reads the steps reversed; the others get its outputs (in that
    reversed order) and the reversed mask, and read them forwards."""
    cfg = ctx.config
    layer = _layer_options(ctx, cfg)
    cell_cfg = cfg["cell"]
    if cell_cfg["class_name"] == "StackedRNNCells":
        cells = cell_cfg["config"]["cells"]
        paths = []
        used: dict[str, int] = {}
        for c in cells:
            base = to_snake_case(c["class_name"])
            paths.append(["cell", "cells", base if base not in used else f"{base}_{used[base]}", "vars"])
            used[base] = used.get(base, 0) + 1
    else:
        cells, paths = [cell_cfg], [["cell", "vars"]]
    options = [_cell_options(ctx, c["class_name"], c["config"]) for c in cells]
    flat = ctx.weights()
    initial = _states_in(ctx)
    expected = sum(STATES[c["kind"]] for c in options)
    if initial and len(initial) != expected:
        raise ctx.unsupported(f"{len(initial)} initial states for StackedRNNCells (expected {expected})")
    x = ctx.inputs[0]
    outputs: list[Value] = []
    states: list[Value] = []
    mask = _rnn_call_mask(ctx) if len(cells) > 1 else None
    for i, (cell, path) in enumerate(zip(options, paths)):
        count = 3 if cell["use_bias"] else 2
        if flat:
            weights, flat = flat[:count], flat[count:]
        else:
            weights = _cell_weight_groups(ctx.reader.group(ctx.entry.name) if ctx.reader is not None and hasattr(ctx.reader, "group") else None, path)
        input_size = int(x.spec.shape[-1])
        part = f"cell {cells[i]['config'].get('name', i)!r}" if len(cells) > 1 else ""
        params = _cell_params(ctx, cell, weights, input_size, "forward", part)
        cell["go_backwards"] = layer["go_backwards"] and i == 0
        last = i == len(cells) - 1
        this_layer = dict(layer, return_sequences=layer["return_sequences"] or not last, go_backwards=cell["go_backwards"])
        if len(cells) == 1:
            sub = ctx
        else:  # one node per cell, named after it (rnn/lstm_cell); the layer's mask for each
            if i == 1 and layer["go_backwards"] and mask is not None:  # the steps now come reversed
                mask = ctx.add("bool_op", [mask], [mask.spec], {"fn": "flip", "axis": 1}).outputs[0]
                mask.name = f"{ctx.name}_mask_reversed"
            kwargs: dict[str, list[Value]] = {"mask": [mask]} if mask is not None else {}
            if initial:
                kwargs["initial_state"], initial = initial[:STATES[cell["kind"]]], initial[STATES[cell["kind"]]:]
            sub = replace(
                ctx, inputs=[x], name=f"{ctx.name}/{cells[i]['config'].get('name', i)}", input_masks=[mask],
                tensor_kwargs=kwargs, output_masks=None,
            )
        outputs = _add_rnn_node(sub, [cell], params, this_layer, None)
        states += outputs[1:]
        x = outputs[0]
    if flat:
        raise BadModelFile(f"{ctx.file}: layer {ctx.name!r} ({ctx.class_name}): the file holds {len(flat)} more "
                           "weights than its cells' configs imply")
    result = [x] + states
    out_mask = call_mask(ctx) if layer["return_sequences"] else None
    ctx.set_output_masks([out_mask] + [None] * len(states))
    return result


@register_importer("TimeDistributed")
def import_time_distributed(ctx: LayerContext) -> list[Value]:
    """Apply the wrapped layer to every step: fold (batch, steps) into one batch axis, import
    the inner layer on that, unfold. (Keras 3 loops over the steps; the same numbers, except
    for layers with batch statistics in training, e.g. BatchNormalization.)"""
    from tf2torch.frontends.keras.layer_calls import LayerCall, LayerEntry
    from tf2torch.frontends.keras.registry import LAYER_IMPORTERS

    inner = ctx.config["layer"]
    class_name = inner["class_name"]
    if class_name not in LAYER_IMPORTERS or class_name in ("TimeDistributed", "Bidirectional", "RNN"):
        raise ctx.unsupported(f"TimeDistributed around {class_name}")
    x = ctx.inputs[0]
    if x.rank < 3:
        raise ctx.unsupported("TimeDistributed on a rank-2 input")
    batch, steps = x.spec.shape[0], x.spec.shape[1]
    folded_batch = None if batch is None or steps is None else batch * steps
    folded = ctx.add("time_distributed_fold", [x], [TensorSpec((folded_batch,) + x.spec.shape[2:], x.spec.dtype)]).outputs[0]
    folded.name = f"{ctx.name}_steps"
    weights = ctx.weights()
    if not weights and ctx.reader is not None and hasattr(ctx.reader, "group"):
        weights = _cell_weight_groups(ctx.reader.group(ctx.entry.name), ["layer", "vars"])
    entry = LayerEntry(class_name, ctx.entry.name, dict(inner["config"], name=ctx.entry.name), [LayerCall([])], inner)
    inner_ctx = LayerContext(
        graph=ctx.graph, entry=entry, call=LayerCall([]), call_index=ctx.call_index, inputs=[folded],
        tensor_kwargs={}, keras_major=ctx.keras_major, name=ctx.name, file=ctx.file, _weights=weights,
        scope=ctx.scope,
    )
    outputs = LAYER_IMPORTERS[class_name](inner_ctx)
    if len(outputs) != 1:
        raise ctx.unsupported(f"TimeDistributed around a layer with {len(outputs)} outputs")
    y = outputs[0]
    shape = (batch, steps) + y.spec.shape[1:]
    out = ctx.add("time_distributed_unfold", [y, x], [TensorSpec(shape, y.spec.dtype)]).outputs[0]
    ctx.set_output_masks([ctx.input_masks[0] if ctx.input_masks else None])
    return [out]


@register_importer("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
def import_conv_lstm(ctx: LayerContext) -> list[Value]:
    """ConvLSTM1D/2D/3D: one `conv_lstm` node (channels-first in torch).
    Inputs: x, then the mask (if `attrs["has_mask"]`), then the initial states h, c.
    Outputs: the output, then h, c if return_state."""
    from tf2torch.frontends.keras.context import as_tuple, channels_last
    from tf2torch.frontends.keras.importers.shapes import conv_output_length, same_padding

    channels_last(ctx)
    cfg = ctx.config
    rank = int(ctx.class_name[-2])
    x = ctx.inputs[0]
    if x.rank != rank + 3:
        raise ctx.unsupported(f"{ctx.class_name} on a rank-{x.rank} input")
    layer = _layer_options(ctx, cfg)
    states = _states_in(ctx)
    if states and len(states) != 2:
        raise ctx.unsupported(f"{len(states)} initial states (expected 2: h and c)")
    if layer["stateful"] and states:
        raise ctx.unsupported("initial states on a stateful layer")
    if layer["stateful"] and x.spec.shape[0] is None:
        raise ctx.unsupported("stateful=True without a fixed batch size")
    kernel_size = as_tuple(cfg["kernel_size"], rank)
    strides = as_tuple(cfg.get("strides", 1), rank)
    dilation = as_tuple(cfg.get("dilation_rate", 1), rank)
    padding = str(cfg.get("padding", "valid")).lower()
    in_spatial = x.spec.shape[2:-1]
    if any(n is None for n in in_spatial):
        raise ctx.unsupported(f"{ctx.class_name} with dynamic spatial dimensions")
    pads = None
    if padding == "same" and strides != (1,) * rank:
        # TF's 'same' with strides: the odd padding cell goes at the end (explicit pads).
        pads = tuple(same_padding(n, k, s, d) for n, k, s, d in zip(in_spatial, kernel_size, strides, dilation))
    filters = int(cfg["filters"])
    use_bias = bool(cfg.get("use_bias", True))
    weights = check_weights(ctx, _weights(ctx, ["cell", "vars"]),
                            conv_lstm_shapes(kernel_size, x.spec.shape[-1], filters, use_bias))
    layout = "DHW"[3 - rank:] + "IO"
    params = {"kernel": ctx.param(weights[0], layout), "recurrent_kernel": ctx.param(weights[1], layout)}
    if use_bias:
        params["bias"] = ctx.param(weights[2], "O")
    batch, steps = x.spec.shape[0], x.spec.shape[1]
    spatial = tuple(conv_output_length(n, k, s, d, padding) for n, k, s, d in zip(in_spatial, kernel_size, strides, dilation))
    mask = _rnn_call_mask(ctx)
    if mask is not None:
        if mask.spec.dtype != "bool":  # an explicit numeric mask: Keras casts it
            mask = ctx.add("bool_op", [mask], [TensorSpec(mask.spec.shape, "bool")], {"fn": "not_equal", "value": 0}).outputs[0]
        if mask.rank not in (2, rank + 2):
            raise ctx.unsupported(f"a rank-{mask.rank} mask on {ctx.class_name}")
        if mask.rank > 2 and tuple(spatial) != tuple(in_spatial):
            # Keras' RNN loop tiles the mask of each input position onto the output: it
            # fails itself when padding/strides change the spatial size.
            raise ctx.unsupported(f"a per-position mask (e.g. from Masking) on {ctx.class_name} whose output size "
                                  f"{spatial} differs from its input size {tuple(in_spatial)}")
    state_spec = TensorSpec((batch,) + spatial + (filters,))
    out = TensorSpec((batch, steps) + spatial + (filters,)) if layer["return_sequences"] else state_spec
    state_specs = [state_spec] * (2 if layer["return_state"] else 0)
    attrs = {
        **layer, "rank": rank, "filters": filters, "in_channels": int(x.spec.shape[-1]), "kernel_size": kernel_size,
        "strides": strides, "dilation": dilation, "padding": padding, "input_padding": pads, "use_bias": use_bias,
        "activation": _activation(ctx, cfg.get("activation", "tanh")),
        "recurrent_activation": _activation(ctx, cfg.get("recurrent_activation", "sigmoid")),
        "dropout": float(cfg.get("dropout", 0.0) or 0.0),
        "recurrent_dropout": float(cfg.get("recurrent_dropout", 0.0) or 0.0),
        "has_mask": mask is not None, "n_initial_states": len(states),
    }
    inputs = [x] + ([mask] if mask is not None else []) + states
    node = ctx.add("conv_lstm", inputs, [out] + state_specs, attrs, params)
    if layer["return_state"]:
        for value, suffix in zip(node.outputs, ("output", "h", "c")):
            value.name = f"{ctx.name}_{suffix}"
    # ConvLSTM.compute_mask: the mask passes to the sequence output only.
    passed = call_mask(ctx)
    ctx.set_output_masks([passed if layer["return_sequences"] else None] + [None] * len(state_specs))
    return list(node.outputs)
