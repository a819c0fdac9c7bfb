"""LayoutPass: decide, once, the layout every tensor has in the generated PyTorch code.

Keras computes channels-last; PyTorch's conv stack is channels-first. Each value gets a
`perm` (torch tensor = source tensor.permute(perm)). Ops declare their needs in
`ir.ops.OPS`; where a value's layout differs from what a consumer needs, a `transpose`
node is inserted and recorded in `graph.notes`, so every runtime permute is named.

    before:  x[N,H,W,C] -> conv -> relu -> flatten -> dense
    after:   x[N,C,H,W] -> conv -> relu -> flatten(feature_order) -> dense(rows reordered)
"""

from __future__ import annotations

import math

import numpy as np

from tf2torch.ir import Graph, Node, SourceRef, Value
from tf2torch.ir.ops import Layout, op_def


def channels_first(rank: int) -> tuple[int, ...] | None:
    if rank < 3:
        return None
    return (0, rank - 1) + tuple(range(1, rank - 1))


def _normal(perm: tuple[int, ...] | None, rank: int) -> tuple[int, ...] | None:
    return None if perm is None or perm == tuple(range(rank)) else perm


def _computed(node: Node) -> list[Value]:
    """The inputs a node computes with (not those it reads only the shape of)."""
    return node.inputs[:len(node.inputs) - node.attrs.get("shape_inputs", 0)]


class LayoutPass:
    """requires: a shaped graph in source layout. ensures: every Value has its torch perm."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._converted: dict[tuple[int, tuple | None], Value] = {}

    def run(self) -> Graph:
        for value in self.graph.inputs:
            # Images and volumes come in NCHW / NCDHW; sequences keep (batch, steps, features).
            # A channels_first Keras input (every use a view to channels-last) is already NCHW.
            value.perm = channels_first(value.rank) if value.rank in (4, 5) and not self._viewed_as_channels_last(value) else None
        for node in list(self.graph.nodes):
            self._visit(node)
        self._fix_outputs()
        return self.graph

    # -- per-op policies ----------------------------------------------------------------

    def _visit(self, node: Node) -> None:
        layout = op_def(node.op).layout
        if layout is Layout.CHANNELS_FIRST:
            # Keras masks (bool) have no channel axis: they keep the Keras layout (batch, steps, ...).
            for i, value in enumerate(_computed(node)):
                self._require(node, i, None if value.spec.dtype == "bool" else channels_first(value.rank))
            for out in node.outputs:
                out.perm = None if out.spec.dtype == "bool" else channels_first(out.rank)
        elif layout in (Layout.ELEMENTWISE, Layout.AXIS):
            self._visit_elementwise(node)
        elif layout is Layout.FLATTEN:
            self._visit_flatten(node)
        elif layout is Layout.DROPS_AXES:
            self._visit_drops_axes(node)
        elif layout is Layout.VIEW:
            self._visit_view(node)
        elif layout is Layout.ANY_INPUT:
            for out in node.outputs:
                out.perm = None
        else:
            # A traced layer taking an NCHW image computes images: its outputs are NCHW after it.
            takes_images = node.op == "tf_subgraph" and any(
                v.rank in (4, 5) and v.perm == channels_first(v.rank) for v in _computed(node))
            for i, value in enumerate(_computed(node)):
                if node.op == "dense" and value.feature_order is not None:
                    continue  # the dense converter reorders its weight rows instead
                self._require(node, i, None)
            for out in node.outputs:
                out.perm = None
            if takes_images:
                self._traced_images_to_channels_first(node)

    def _traced_images_to_channels_first(self, node: Node) -> None:
        """A traced custom layer computes in the Keras layout; the rank-4/5 outputs of one that
        takes an image are images like any other from then on: NCHW for the layers after it and
        as model outputs. (Those of a layer on sequences, e.g. attention scores, keep the Keras
        layout, as a native layer's do.)

        before:  sin = Sin(x)            consumers(sin) ...
        after:   sin = Sin(x); sin_cf = sin.permute(0, 3, 1, 2); consumers(sin_cf) ...
        """
        position = self.graph.nodes.index(node) + 1
        for out in node.outputs:
            if out.rank not in (4, 5) or out.spec.dtype == "bool":
                continue
            target = channels_first(out.rank)
            name = out.name
            out.name = f"{name}_keras_layout"  # the permuted tensor is the one users see, by the layer's name
            permute = Node("transpose", [out], [], SourceRef(node.source.framework, "layout", name), {"dims": target})
            converted = Value(name, out.spec, permute, perm=target)
            permute.outputs.append(converted)
            self.graph.nodes.insert(position, permute)
            self.graph.replace_uses(out, converted, after=permute)
            self._converted[(id(out), target)] = converted
            self.graph.notes.append(f"runtime permute of '{name}' after it ({node.source.kind}): a traced layer "
                                    "computes in the Keras layout, the layers after it in the channels-first one")

    def _visit_elementwise(self, node: Node) -> None:
        inputs = _computed(node)
        ranks = {v.rank for v in inputs}
        target: tuple[int, ...] | None = None
        if len(ranks) == 1:
            rank = ranks.pop()
            if any(v.perm is not None for v in inputs):
                target = channels_first(rank) if any(v.perm == channels_first(rank) for v in inputs) else None
        for i in range(len(inputs)):
            self._require(node, i, target)
        first = node.inputs[0]
        for out in node.outputs:
            out.perm = target if out.rank == first.rank else None
            if op_def(node.op).passes_feature_order and len(node.inputs) == 1:
                out.feature_order = first.feature_order
        for attr in op_def(node.op).axis_attrs:
            node.attrs[attr] = first.torch_axis(node.attrs[attr])

    def _visit_drops_axes(self, node: Node) -> None:
        """Keep the input's layout if the axes left after the removal are still in an order the
        IR uses: NHWC mean over (1, 2) on NCHW input -> (N, C), x[:, 2] -> (N, C, W)."""
        x, out = node.inputs[0], node.outputs[0]
        dropped = node.attrs.get(op_def(node.op).dropped_axes_attr or "")
        if x.perm is not None and dropped is not None:
            kept = [axis for axis in x.perm if axis not in dropped]
            induced = _normal(tuple(sorted(kept).index(axis) for axis in kept), len(kept))
            if induced is None or induced == channels_first(len(kept)):
                out.perm = induced
                return
        self._require(node, 0, None)
        out.perm = None

    def _visit_view(self, node: Node) -> None:
        """out = x.permute(dims) in the source layout; out.perm makes the torch tensor x's:
        dims[out.perm[j]] == x.perm[j] for every torch dim j."""
        x, out = node.inputs[0], node.outputs[0]
        current = x.perm or tuple(range(x.rank))
        out.perm = _normal(tuple(node.attrs["dims"].index(axis) for axis in current), out.rank)

    def _viewed_as_channels_last(self, value: Value) -> bool:
        consumers = self.graph.consumers(value)
        return bool(consumers) and all(
            n.op == "layout_view" and tuple(n.attrs["dims"]) == (0,) + tuple(range(2, value.rank)) + (1,)
            for n in consumers
        )

    def _visit_flatten(self, node: Node) -> None:
        x = node.inputs[0]
        out = node.outputs[0]
        out.perm = None
        if x.perm is not None and all(d is not None for d in x.spec.shape[1:]):
            inner = [p - 1 for p in x.perm[1:]]
            size = math.prod(x.spec.shape[1:])
            order = np.arange(size).reshape(x.spec.shape[1:]).transpose(inner).ravel()
            if np.array_equal(order, np.arange(size)):
                return  # only size-1 axes move (e.g. a 1x1 map): both orders agree
            if self._absorbable(out):
                out.feature_order = order
                return
        self._require(node, 0, None)

    def _absorbable(self, value: Value) -> bool:
        """True if every use of `value` ends in a Dense that can reorder its weight rows."""
        if value in self.graph.outputs:
            return False
        consumers = self.graph.consumers(value)
        if not consumers:
            return False
        for node in consumers:
            if node.op == "dense":
                continue
            spec = op_def(node.op)
            if spec.passes_feature_order and len(node.inputs) == 1 and self._absorbable(node.outputs[0]):
                continue
            return False
        return True

    # -- boundaries -----------------------------------------------------------------------

    def _require(self, node: Node, index: int, target: tuple[int, ...] | None) -> None:
        value = node.inputs[index]
        target = _normal(target, value.rank)
        if _normal(value.perm, value.rank) == target:
            return
        node.inputs[index] = self._converted_value(value, target, node)

    def _converted_value(self, value: Value, target: tuple[int, ...] | None, before: Node) -> Value:
        key = (id(value), target)
        if key in self._converted:
            return self._converted[key]
        current = value.perm or tuple(range(value.rank))
        wanted = target or tuple(range(value.rank))
        dims = tuple(current.index(axis) for axis in wanted)
        source = SourceRef(before.source.framework, "layout", f"{value.name}_{'cf' if target else 'source'}")
        node = Node("transpose", [value], [], source, {"dims": dims})
        out = Value(source.name, value.spec, node, perm=target)
        node.outputs.append(out)
        self.graph.insert_before(before, node)
        self.graph.notes.append(
            f"runtime permute of '{value.name}' before '{before.source.name}' ({before.source.kind}): "
            f"it needs the {'channels-first' if target else 'Keras'} layout"
        )
        self._converted[key] = out
        return out

    def _fix_outputs(self) -> None:
        """Rank-3 outputs go back to (batch, steps, features); 4D/5D outputs stay NCHW."""
        for i, value in enumerate(self.graph.outputs):
            if value.perm is not None and value.rank == 3:
                anchor = Node("transpose", [], [], value.producer.source if value.producer else SourceRef("", "", ""))
                self.graph.nodes.append(anchor)
                converted = self._converted_value(value, None, anchor)
                self.graph.nodes.remove(anchor)
                self.graph.outputs[i] = converted
