"""Integer and bucketing preprocessing layers: Discretization, IntegerLookup, CategoryEncoding.

Their outputs are integer ids (int64 in torch) or float encodings; the optional
`output_mode` encodings ("one_hot", "multi_hot", "count") are one category_encoding node
after the id computation, as Keras composes them.
"""

from __future__ import annotations

from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import TensorSpec, Value

ENCODINGS = ("one_hot", "multi_hot", "count")


def _encoded(ctx: LayerContext, ids: Value, num_tokens: int, mode: str, drop_first: bool = False) -> list[Value]:
    """CategoryEncoding's output: one_hot keeps a (batch, n) input's n (unless it is 1),
    multi_hot and count reduce it. `drop_first`: index 0 (a lookup's mask token) gets no
    column, as Keras' lookup layers encode."""
    if mode not in ENCODINGS:
        raise ctx.unsupported(f"output_mode={mode!r}")
    if ids.rank > 2:
        raise ctx.unsupported(f"output_mode={mode!r} on a rank-{ids.rank} input (rank 1 or 2)")
    if ids.rank == 1 and mode != "one_hot":
        raise ctx.unsupported(
            f"output_mode={mode!r} on a rank-1 input (Keras encodes the whole batch as one sample, without a batch axis)"
        )
    batch = ids.spec.shape[0]
    columns = num_tokens - int(drop_first)
    if mode == "one_hot" and ids.rank == 2 and ids.spec.shape[1] != 1:
        shape: tuple[int | None, ...] = (batch, ids.spec.shape[1], columns)
    else:
        shape = (batch, columns)
    attrs = {"num_tokens": num_tokens, "mode": mode, "drop_first": drop_first}
    return ctx.add("category_encoding", [ids], [TensorSpec(shape, "float32")], attrs).outputs


@register_importer("CategoryEncoding")
def import_category_encoding(ctx: LayerContext) -> list[Value]:
    if len(ctx.inputs) != 1:
        raise ctx.unsupported("count_weights")
    if ctx.config.get("sparse"):
        raise ctx.unsupported("sparse=True (torch's dense tensor is returned instead)")
    return _encoded(ctx, ctx.inputs[0], int(ctx.config["num_tokens"]), ctx.config.get("output_mode", "multi_hot"))


@register_importer("Discretization")
def import_discretization(ctx: LayerContext) -> list[Value]:
    """Bucket index: i such that boundaries[i - 1] <= x < boundaries[i]."""
    cfg = ctx.config
    boundaries = cfg.get("bin_boundaries")
    if not boundaries:
        raise ctx.unsupported("a Discretization without bin_boundaries in its config (adapted by tf_keras)")
    if cfg.get("sparse"):
        raise ctx.unsupported("sparse=True")
    x = ctx.inputs[0]
    attrs = {"boundaries": tuple(float(b) for b in boundaries)}
    (ids,) = ctx.add("discretize", [x], [TensorSpec(x.spec.shape, "int64")], attrs).outputs
    mode = cfg.get("output_mode", "int")
    if mode == "int":
        return [ids]
    return _encoded(ctx, ids, len(boundaries) + 1, mode)


@register_importer("IntegerLookup")
def import_integer_lookup(ctx: LayerContext) -> list[Value]:
    """Token -> index: the mask token (if any) is 0, then the OOV indices (an unknown token
    takes index `offset + token mod num_oov`), then the vocabulary in its order."""
    cfg = ctx.config
    vocabulary = cfg.get("vocabulary")
    if vocabulary is None:
        vocabulary = _saved_vocabulary(ctx)
    if not isinstance(vocabulary, list):
        raise ctx.unsupported(
            "an IntegerLookup whose vocabulary is neither a list in its config nor a saved asset (a file path)"
        )
    if cfg.get("sparse"):
        raise ctx.unsupported("sparse=True")
    num_oov = int(cfg.get("num_oov_indices", 1))
    if num_oov > 1 and cfg.get("oov_method", "floormod") != "floormod":
        raise ctx.unsupported(f"oov_method={cfg.get('oov_method')!r}")
    mask_token = cfg.get("mask_token")
    offset = 0 if mask_token is None else 1
    tokens = [int(t) for t in vocabulary]
    if mask_token is not None and int(mask_token) in tokens:
        raise ctx.unsupported("a vocabulary that contains the mask token")
    x = ctx.inputs[0]
    if cfg.get("invert"):
        return _import_inverted_lookup(ctx, tokens, num_oov, mask_token)
    attrs = {
        "tokens": tuple(tokens),
        "first_index": offset + num_oov,
        "num_oov": num_oov,
        "oov_offset": offset,
        "mask_token": None if mask_token is None else int(mask_token),
    }
    (ids,) = ctx.add("integer_lookup", [x], [TensorSpec(x.spec.shape, "int64")], attrs).outputs
    mode = cfg.get("output_mode", "int")
    if mode == "int":
        return [ids]
    if mode == "tf_idf":
        raise ctx.unsupported("output_mode='tf_idf'")
    return _encoded(ctx, ids, len(tokens) + num_oov + offset, mode, drop_first=mask_token is not None)


def _saved_vocabulary(ctx: LayerContext) -> list[int] | None:
    """An adapted vocabulary: Keras 3 writes it, special tokens first, to the archive's assets."""
    asset = getattr(ctx.reader, "asset", None)
    data = asset(ctx.entry.name, "vocabulary.txt") if asset is not None else None
    if data is None:
        return None
    tokens = [int(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    mask_token, oov_token = ctx.config.get("mask_token"), ctx.config.get("oov_token", -1)
    if mask_token is not None and tokens[:1] == [int(mask_token)]:
        tokens = tokens[1:]
    num_oov = int(ctx.config.get("num_oov_indices", 1))
    if tokens[:num_oov] == [int(oov_token)] * num_oov:
        tokens = tokens[num_oov:]
    return tokens


def _import_inverted_lookup(ctx: LayerContext, tokens: list[int], num_oov: int, mask_token: int | None) -> list[Value]:
    """invert=True: index -> token; an OOV index or one outside the table gives the OOV token."""
    if ctx.config.get("output_mode", "int") != "int":
        raise ctx.unsupported("invert=True with an output_mode other than 'int'")
    oov_token = int(ctx.config.get("oov_token", -1))
    table = ([] if mask_token is None else [int(mask_token)]) + [oov_token] * num_oov + tokens
    x = ctx.inputs[0]
    attrs = {"table": tuple(table), "default": oov_token}
    return ctx.add("index_lookup", [x], [TensorSpec(x.spec.shape, "int64")], attrs).outputs
