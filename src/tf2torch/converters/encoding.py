"""discretize (Keras Discretization), integer_lookup and index_lookup (IntegerLookup and its
invert=True), category_encoding (CategoryEncoding, and the output_mode of the others)."""

from __future__ import annotations

import numpy as np

from tf2torch.codegen.literals import call
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.params import state_array
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node

DISCRETIZATION_HELPER = '''
class Discretization(nn.Module):
    """Keras Discretization: the bucket index i with boundaries[i - 1] <= x < boundaries[i]."""

    def __init__(self, num_boundaries: int) -> None:
        super().__init__()
        self.register_buffer("boundaries", torch.zeros(num_boundaries))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bucketize(x, self.boundaries, right=True)
'''

INTEGER_LOOKUP_HELPER = '''
class IntegerLookup(nn.Module):
    """Keras IntegerLookup: token -> index by binary search in the sorted vocabulary. A token
    outside it gets an OOV index, oov_offset + token mod num_oov (-1 when num_oov is 0, where
    Keras raises); the mask token, if any, gets 0."""

    def __init__(self, size: int, num_oov: int = 1, oov_offset: int = 0, mask_token: int | None = None) -> None:
        super().__init__()
        self.num_oov = num_oov
        self.oov_offset = oov_offset
        self.mask_token = mask_token
        self.register_buffer("tokens", torch.zeros(size, dtype=torch.long))  # sorted
        self.register_buffer("indices", torch.zeros(size, dtype=torch.long))  # index of each token

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.long()
        position = torch.searchsorted(self.tokens, x).clamp_max(self.tokens.numel() - 1)
        if self.num_oov:
            oov = self.oov_offset + torch.remainder(x, self.num_oov)
        else:
            oov = torch.full_like(x, -1)
        ids = torch.where(self.tokens[position] == x, self.indices[position], oov)
        if self.mask_token is not None:
            ids = ids.masked_fill(x == self.mask_token, 0)
        return ids
'''


@register_converter("discretize")
def convert_discretize(node: Node, b: ModuleBuilder) -> None:
    boundaries = np.asarray(node.attrs["boundaries"], np.float32)
    cls = b.helper("Discretization", DISCRETIZATION_HELPER)
    mod = b.submodule(node, call(cls, len(boundaries)), {"boundaries": state_array(boundaries)})
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")


@register_converter("integer_lookup")
def convert_integer_lookup(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    tokens = np.asarray(a["tokens"], np.int64)
    order = np.argsort(tokens, kind="stable")
    state = {"tokens": tokens[order], "indices": (order + a["first_index"]).astype(np.int64)}
    kwargs = {k: a[k] for k, default in (("num_oov", 1), ("oov_offset", 0), ("mask_token", None)) if a[k] != default}
    cls = b.helper("IntegerLookup", INTEGER_LOOKUP_HELPER)
    mod = b.submodule(node, call(cls, len(tokens), **kwargs), state)
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")


@register_converter("category_encoding")
def convert_category_encoding(node: Node, b: ModuleBuilder) -> None:
    F = b.use_functional()
    x = node.inputs[0]
    ids = f"{b.var(x)}.long()" if x.spec.dtype != "int64" else b.var(x)
    n, mode = node.attrs["num_tokens"], node.attrs["mode"]
    one_hot = f"{F}.one_hot({ids}, {n})"
    comment = None
    if node.attrs["drop_first"]:
        one_hot += "[..., 1:]"
        comment = "index 0 (the mask token) has no column"
    if mode == "one_hot":
        if x.rank == 2 and x.spec.shape[1] == 1:
            one_hot = one_hot.replace(f"({ids},", f"({ids}.squeeze(1),", 1)
        b.emit(node.outputs[0], f"{one_hot}.float()", comment=comment)
        return
    reduce = "amax" if mode == "multi_hot" else "sum"
    b.emit(node.outputs[0], f"{one_hot}.{reduce}(dim=1).float()", comment=comment)


INDEX_LOOKUP_HELPER = '''
class IndexLookup(nn.Module):
    """Keras IntegerLookup(invert=True): index -> token; an index outside the table gives
    the OOV token."""

    def __init__(self, size: int, default: int = -1) -> None:
        super().__init__()
        self.default = default
        self.register_buffer("tokens", torch.zeros(size, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.long()
        inside = (x >= 0) & (x < self.tokens.numel())
        return torch.where(inside, self.tokens[x.clamp(0, self.tokens.numel() - 1)], self.default)
'''


@register_converter("index_lookup")
def convert_index_lookup(node: Node, b: ModuleBuilder) -> None:
    table = np.asarray(node.attrs["table"], np.int64)
    cls = b.helper("IndexLookup", INDEX_LOOKUP_HELPER)
    kwargs = {} if node.attrs["default"] == -1 else {"default": node.attrs["default"]}
    mod = b.submodule(node, call(cls, len(table), **kwargs), {"tokens": table})
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")
