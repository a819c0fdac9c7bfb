"""Fold a ZeroPadding layer into the convolution that consumes it.

Keras applications pad explicitly before a 'valid' convolution (ResNet's conv1_pad,
DenseNet's zero_padding2d). `nn.Conv2d(padding=...)` zero-pads inside the kernel, so the
separate `F.pad` copy of the whole feature map is not needed. Exact: both pad with zeros.

before: a -> pad(p) -> t -> conv(pads q) -> y
after:  a -> conv(pads p + q) -> y   (when t has no other use)
"""

from __future__ import annotations

from tf2torch.ir import Graph


def fold_zero_padding(graph: Graph) -> bool:
    uses: dict[int, int] = {}
    for node in graph.nodes:
        for value in node.inputs:
            uses[id(value)] = uses.get(id(value), 0) + 1
    outputs = {id(v) for v in graph.outputs}
    modified = False
    for conv in list(graph.nodes):
        if conv.op != "conv" or not isinstance(conv.attrs["pads"], list):
            continue
        padded = conv.inputs[0]
        pad = padded.producer
        if pad is None or pad.op != "pad" or pad not in graph.nodes:
            continue
        if uses.get(id(padded), 0) != 1 or id(padded) in outputs or len(pad.attrs["pads"]) != len(conv.attrs["pads"]):
            continue
        if any(left < 0 or right < 0 for left, right in pad.attrs["pads"]):
            continue
        # Asymmetric sums too: the conv converter pads them without a copy where it can
        # (symmetric padding plus an output crop), else with the same F.pad as before.
        conv.attrs["pads"] = [(a + c, b + d) for (a, b), (c, d) in zip(pad.attrs["pads"], conv.attrs["pads"])]
        conv.inputs = [pad.inputs[0]] + conv.inputs[1:]
        graph.nodes.remove(pad)
        modified = True
    return modified
