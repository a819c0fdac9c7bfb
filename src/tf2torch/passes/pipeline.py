"""The ordered pass pipeline. Order matters:

1. LayoutPass first: it inserts the transposes the later passes clean up (not for ONNX
   graphs, which are channels-first already).
2. cancel_transposes: after layout, merges and drops transposes.
3. fold_zero_padding: a ZeroPadding layer feeding only a conv becomes the conv's padding.
4. remove_dead_code last: the passes above may leave nodes without users.
"""

from __future__ import annotations

from tf2torch.ir import Graph
from tf2torch.passes.cleanup import cancel_transposes, remove_dead_code
from tf2torch.passes.layout import LayoutPass
from tf2torch.passes.padding import fold_zero_padding


def run_passes(graph: Graph) -> Graph:
    if graph.source_format != "onnx":  # ONNX tensors are channels-first already
        graph = LayoutPass(graph).run()
    cancel_transposes(graph)
    fold_zero_padding(graph)
    remove_dead_code(graph)
    return graph
