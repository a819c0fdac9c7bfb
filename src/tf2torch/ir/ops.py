"""The IR op vocabulary and how each op relates to tensor layout.

The layout pass reads only this table; converters never branch on data format.

- CHANNELS_FIRST: the op wants its tensor inputs with the channel axis at dim 1 (conv,
  pooling, BatchNorm...). Its outputs of rank >= 3 are channels-first too.
- ELEMENTWISE: works in any layout; all inputs are brought to one common layout and the
  output keeps it. A flatten's feature order passes through unary ops of this kind.
- AXIS: like ELEMENTWISE, and the pass rewrites the integer attributes named in
  `axis_attrs` from source axes to torch dims.
- DROPS_AXES: removes the source axes named by the attribute `dropped_axes_attr` (a
  reduction without keepdims, squeeze, integer indexing). The input keeps its layout when the
  remaining axes then have a layout the IR uses (channels-first or source order); the
  converter maps axes with Value.torch_axis. Otherwise (or when the attribute is None) the
  input is brought to the source layout, as for SOURCE.
- ANY_INPUT: takes its inputs in whatever layout they have (the converter reads their perms,
  e.g. composes a transpose or rewrites einsum subscripts) and gives source-layout outputs.
- SOURCE: needs the source (Keras) layout, e.g. Reshape, Dense on rank > 2, RNNs.
- A node whose `attrs["shape_inputs"]` is n reads only the shape of its last n inputs
  (e.g. `x.reshape(-1, y.shape[1])`): those keep whatever layout they have.
- FLATTEN: Flatten; channels-first input is flattened directly when every consumer can
  absorb the feature order (a Dense reorders its weight rows), else permuted first.
- VIEW: layout_view, a source-layout permutation (attrs["dims"]) that moves no data: its
  output's perm is chosen so the torch tensor is the input's (Keras channels_first layers).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Layout(Enum):
    CHANNELS_FIRST = "channels_first"
    ELEMENTWISE = "elementwise"
    AXIS = "axis"
    DROPS_AXES = "drops_axes"
    ANY_INPUT = "any_input"
    SOURCE = "source"
    FLATTEN = "flatten"
    VIEW = "view"


@dataclass(frozen=True)
class OpDef:
    name: str
    layout: Layout
    axis_attrs: tuple[str, ...] = ()
    # True if a Dense can absorb a flatten feature order through this op (unary ops).
    passes_feature_order: bool = False
    dropped_axes_attr: str | None = None  # Layout.DROPS_AXES: the attribute naming the removed axes


def _defs(*defs: OpDef) -> dict[str, OpDef]:
    table: dict[str, OpDef] = {}
    for d in defs:
        if d.name in table:
            raise ValueError(f"IR op {d.name!r} defined twice")
        table[d.name] = d
    return table


OPS: dict[str, OpDef] = _defs(
    OpDef("dense", Layout.SOURCE),
    OpDef("activation", Layout.ELEMENTWISE, passes_feature_order=True),
    OpDef("fake_quant", Layout.ELEMENTWISE, passes_feature_order=True),
    OpDef("softmax", Layout.AXIS, axis_attrs=("axis",)),
    OpDef("prelu", Layout.ELEMENTWISE),
    OpDef("conv", Layout.CHANNELS_FIRST),
    OpDef("conv_transpose", Layout.CHANNELS_FIRST),
    OpDef("depthwise_conv", Layout.CHANNELS_FIRST),
    OpDef("separable_conv", Layout.CHANNELS_FIRST),
    OpDef("locally_connected", Layout.CHANNELS_FIRST),
    OpDef("pool", Layout.CHANNELS_FIRST),
    OpDef("global_pool", Layout.CHANNELS_FIRST),
    OpDef("adaptive_pool", Layout.CHANNELS_FIRST),
    OpDef("batch_norm", Layout.CHANNELS_FIRST),
    OpDef("channel_affine", Layout.ELEMENTWISE),  # x * weight + bias per channel: a BatchNorm without statistics
    OpDef("layer_norm", Layout.SOURCE),
    OpDef("group_norm", Layout.CHANNELS_FIRST),
    # SpectralNormalization around a Dense / Conv: that op, plus attrs["spectral"].
    OpDef("spectral_dense", Layout.SOURCE),
    OpDef("spectral_conv", Layout.CHANNELS_FIRST),
    OpDef("dropout", Layout.ELEMENTWISE, passes_feature_order=True),
    OpDef("spatial_dropout", Layout.CHANNELS_FIRST),
    OpDef("gaussian_noise", Layout.ELEMENTWISE, passes_feature_order=True),
    OpDef("gaussian_dropout", Layout.ELEMENTWISE, passes_feature_order=True),
    OpDef("alpha_dropout", Layout.ELEMENTWISE, passes_feature_order=True),
    OpDef("activity_regularization", Layout.ELEMENTWISE, passes_feature_order=True),
    OpDef("flatten", Layout.FLATTEN),
    OpDef("reshape", Layout.SOURCE),
    OpDef("permute", Layout.SOURCE),
    OpDef("pad", Layout.CHANNELS_FIRST),
    OpDef("crop", Layout.CHANNELS_FIRST),
    OpDef("upsample", Layout.CHANNELS_FIRST),
    OpDef("add", Layout.ELEMENTWISE),
    OpDef("subtract", Layout.ELEMENTWISE),
    OpDef("multiply", Layout.ELEMENTWISE),
    OpDef("average", Layout.ELEMENTWISE),
    OpDef("divide", Layout.ELEMENTWISE),
    OpDef("scalar_arithmetic", Layout.ELEMENTWISE, passes_feature_order=True),
    OpDef("maximum", Layout.ELEMENTWISE),
    OpDef("minimum", Layout.ELEMENTWISE),
    OpDef("concat", Layout.AXIS, axis_attrs=("axis",)),
    OpDef("dot", Layout.SOURCE),
    OpDef("embedding", Layout.SOURCE),
    OpDef("rescale", Layout.ELEMENTWISE, passes_feature_order=True),
    OpDef("identity", Layout.ELEMENTWISE, passes_feature_order=True),
    OpDef("custom", Layout.SOURCE),
    # Inserted by the layout pass only: attrs["dims"] is the torch permutation.
    OpDef("transpose", Layout.SOURCE),
    OpDef("layout_view", Layout.VIEW),  # data_format="channels_first" (frontends/keras/data_format.py)
    # -- preprocessing and keras.applications layers --
    OpDef("normalize", Layout.ELEMENTWISE),
    OpDef("resize", Layout.CHANNELS_FIRST),
    OpDef("stft_spectrogram", Layout.SOURCE),
    OpDef("mel_spectrogram", Layout.SOURCE),
    OpDef("discretize", Layout.ELEMENTWISE),
    OpDef("integer_lookup", Layout.ELEMENTWISE),
    OpDef("index_lookup", Layout.ELEMENTWISE),
    OpDef("category_encoding", Layout.SOURCE),
    OpDef("auto_contrast", Layout.CHANNELS_FIRST),
    OpDef("random_flip", Layout.AXIS, axis_attrs=("height_axis", "width_axis")),
    OpDef("train_augmentation", Layout.ELEMENTWISE, passes_feature_order=True),  # identity (Random* layers)  # Keras Resizing: tf.image.resize after an optional crop or pad
    OpDef("layer_scale", Layout.ELEMENTWISE),
    OpDef("sample_dropout", Layout.ELEMENTWISE, passes_feature_order=True),
    # -- recurrent layers and masking --
    # Keras masks are bool Values (batch, steps) in the Keras layout (frontends/keras/masking.py).
    OpDef("tokens_mask", Layout.SOURCE),  # Embedding(mask_zero=True): ids != 0
    OpDef("masking", Layout.SOURCE),  # Masking: outputs (zeroed x, mask)
    # Masking on rank >= 4 inputs (frames, e.g. before ConvLSTM2D): channels-first x; the mask
    # (every axis but the channels) stays in the Keras layout, like every bool Value.
    OpDef("channel_masking", Layout.CHANNELS_FIRST),
    OpDef("channel_mask", Layout.CHANNELS_FIRST),  # the same mask alone (Keras 3 configs: any(x != v, -1))
    OpDef("mask_combine", Layout.SOURCE),  # merge layers: and / or of masks
    OpDef("masked_global_avg_pool", Layout.SOURCE),  # GlobalAveragePooling1D with a mask
    OpDef("masked_softmax", Layout.SOURCE),  # Softmax(x, mask)
    OpDef("bool_op", Layout.SOURCE),  # Keras 3 mask ops in configs: not_equal, any, logical_or, ...
    OpDef("rnn", Layout.SOURCE),  # SimpleRNN / LSTM / GRU, (Bidirectional), RNN(cell)
    OpDef("conv_lstm", Layout.CHANNELS_FIRST),  # ConvLSTM1D/2D/3D: (batch, channels, steps, *spatial); mask, states
    OpDef("time_distributed_fold", Layout.SOURCE),  # (batch, steps, ...) -> (batch * steps, ...)
    OpDef("time_distributed_unfold", Layout.SOURCE),  # and back, given the folded input
    # -- attention and transformer parts --
    OpDef("multi_head_attention", Layout.SOURCE),  # inputs named by attrs["roles"]
    OpDef("dot_attention", Layout.SOURCE),  # keras Attention / AdditiveAttention
    OpDef("einsum_dense", Layout.SOURCE),
    OpDef("rms_norm", Layout.SOURCE),
    OpDef("unit_norm", Layout.SOURCE),
    OpDef("repeat_vector", Layout.SOURCE),
    OpDef("position_embedding", Layout.SOURCE),  # keras_hub PositionEmbedding: table[:steps]
    OpDef("take_step", Layout.SOURCE),  # x[:, index] on (batch, steps, features)
    # -- TensorFlow op-level frontend --
    OpDef("tf_unary", Layout.ELEMENTWISE, passes_feature_order=True),
    OpDef("tf_binary", Layout.ELEMENTWISE),
    OpDef("tf_nary", Layout.ELEMENTWISE),
    OpDef("tf_cast", Layout.ELEMENTWISE, passes_feature_order=True),
    OpDef("tf_reduce", Layout.DROPS_AXES, dropped_axes_attr="axes"),
    OpDef("tf_reduce_keep", Layout.ELEMENTWISE),
    OpDef("tf_matmul", Layout.SOURCE),
    OpDef("tf_einsum", Layout.ANY_INPUT),
    OpDef("tf_sdpa", Layout.SOURCE),  # softmax(q k^T * scale + mask) v, folded from einsums / matmuls
    OpDef("tf_argmax", Layout.SOURCE),
    OpDef("tf_topk", Layout.SOURCE),
    OpDef("tf_cumsum", Layout.SOURCE),
    OpDef("tf_complex", Layout.ELEMENTWISE),
    OpDef("tf_fft", Layout.SOURCE),
    # TensorLists: Python lists / tensors indexed on their first axis (frontends/tf/ops/lists.py)
    OpDef("tf_list_reserve", Layout.SOURCE),
    OpDef("tf_list_get", Layout.SOURCE),
    OpDef("tf_list_set", Layout.SOURCE),
    OpDef("tf_list_stack", Layout.SOURCE),
    OpDef("tf_list_length", Layout.SOURCE),  # transforms the innermost axes as the source orders them
    OpDef("tf_reshape", Layout.SOURCE),
    OpDef("tf_transpose", Layout.ANY_INPUT),
    OpDef("tf_unsqueeze", Layout.SOURCE),
    OpDef("tf_squeeze", Layout.DROPS_AXES, dropped_axes_attr="dims"),
    OpDef("tf_stack", Layout.SOURCE),
    OpDef("tf_unstack", Layout.SOURCE),
    OpDef("tf_split", Layout.AXIS, axis_attrs=("axis",)),
    OpDef("tf_slice", Layout.SOURCE),
    OpDef("tf_gather", Layout.SOURCE),
    OpDef("tf_gather_nd", Layout.SOURCE),
    OpDef("tf_tile", Layout.SOURCE),
    OpDef("tf_pad", Layout.SOURCE),
    OpDef("tf_fill", Layout.SOURCE),
    OpDef("tf_range", Layout.SOURCE),
    OpDef("tf_random", Layout.SOURCE),  # a draw from torch's generator (keras.random / tf.random)
    OpDef("tf_broadcast_to", Layout.SOURCE),
    OpDef("tf_shape_tensor", Layout.SOURCE),  # a run-time shape value used as a tensor
    OpDef("tf_flip", Layout.SOURCE),
    OpDef("tf_cross", Layout.SOURCE),
    OpDef("tf_search", Layout.SOURCE),
    OpDef("tf_scatter_nd", Layout.SOURCE),
    OpDef("tf_update_slice", Layout.SOURCE),
    OpDef("tf_in_top_k", Layout.SOURCE),
    OpDef("tf_roll", Layout.SOURCE),
    OpDef("tf_band_part", Layout.SOURCE),
    OpDef("tf_diagonal", Layout.SOURCE),
    OpDef("tf_segment", Layout.SOURCE),
    OpDef("tf_depth_to_space", Layout.CHANNELS_FIRST),
    OpDef("tf_space_to_depth", Layout.CHANNELS_FIRST),
    OpDef("tf_extract_patches", Layout.CHANNELS_FIRST),
    OpDef("tf_one_hot", Layout.SOURCE),
    OpDef("tf_nonzero", Layout.SOURCE),
    OpDef("tf_resize", Layout.CHANNELS_FIRST),
    OpDef("tf_resize_weights", Layout.CHANNELS_FIRST),  # rows @ x @ cols, TF's weights per axis
    # -- raw TF / keras.ops calls in Keras configs (frontends/keras/importers/op_nodes.py) --
    # x[items]: attrs["items"] in source axes, ellipsis expanded; "dropped": the integer-indexed
    # axes (None with new axes: then the source layout)
    OpDef("getitem", Layout.DROPS_AXES, dropped_axes_attr="dropped"),
    OpDef("depth_to_space", Layout.CHANNELS_FIRST),  # TF's DCR order, not pixel_shuffle's
    OpDef("space_to_depth", Layout.CHANNELS_FIRST),
    # Sub-graphs (loop bodies, branches, traced custom layers) in attrs, source layout outside.
    OpDef("tf_while", Layout.SOURCE),
    OpDef("tf_if", Layout.SOURCE),
    OpDef("tf_subgraph", Layout.SOURCE),
)


def op_def(op: str) -> OpDef:
    try:
        return OPS[op]
    except KeyError:
        raise KeyError(f"unknown IR op {op!r}; add it to tf2torch.ir.ops.OPS") from None
