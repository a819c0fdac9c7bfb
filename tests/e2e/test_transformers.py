"""Real transformer models against TensorFlow: keras_hub BERT- and GPT-2-style backbones built
from small configs (converted by config), a text classifier written with the user's own
custom layer (registered with tf2torch.register_layer), and dynamic batch/sequence sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tf2torch
from conftest import convert_and_compare

keras_hub = pytest.importorskip("keras_hub")

SMALL = {"vocabulary_size": 100, "num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64, "max_sequence_length": 64}


def _token_inputs(batch: int, steps: int, seed: int = 0, segments: bool = True) -> dict[str, np.ndarray]:
    """Right-padded token ids with their padding mask (one row fully used, others padded)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 100, (batch, steps)).astype("int32")
    pad = np.ones((batch, steps), "int32")
    for row in range(1, batch):
        pad[row, max(1, steps - 2 * row):] = 0
    ids[pad == 0] = 0
    inputs = {"padding_mask": pad, "token_ids": ids}
    if segments:
        inputs["segment_ids"] = (np.arange(steps)[None, :] >= steps // 2).astype("int32").repeat(batch, 0)
    return inputs


def _verify(result, backbone, inputs: dict[str, np.ndarray], tolerance: float = 1e-5):
    arrays = [inputs[n] for n in result.graph.input_names]
    report = result.verify(arrays, keras_model=backbone, tolerance=tolerance)
    assert report.outputs, "verification compared nothing"
    assert report.ok, report.table()
    return report


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    backbone = keras_hub.models.BertBackbone(**SMALL)
    _perturb(backbone)
    path = tmp_path_factory.mktemp("bert") / "bert.keras"
    backbone.save(path)
    return backbone, tf2torch.convert(str(path))


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    backbone = keras_hub.models.GPT2Backbone(**SMALL)
    _perturb(backbone)
    path = tmp_path_factory.mktemp("gpt2") / "gpt2.keras"
    backbone.save(path)
    return backbone, tf2torch.convert(str(path))


def _perturb(model) -> None:
    rng = np.random.default_rng(0)
    for w in model.weights:
        value = np.asarray(w.numpy())
        w.assign((value + rng.normal(0.0, 0.05, value.shape)).astype(value.dtype))


def test_bert_backbone_matches_tensorflow(bert):
    backbone, result = bert
    _verify(result, backbone, _token_inputs(3, 11))
    code = result.source_code
    # One class named after the keras_hub TransformerEncoder layers, called in a loop (issue 14).
    assert "class TransformerEncoder(nn.Module):" in code and "self.self_attention_layer = MultiHeadAttention(" in code
    assert "self.transformer_layers = nn.ModuleList([TransformerEncoder(), TransformerEncoder()])" in code
    assert "def forward(self, inputs: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:" in code
    assert "transformer_layers.1.feedforward_output_dense.weight" in result.state_dict
    assert "F.scaled_dot_product_attention" in code


def test_bert_verify_loads_the_saved_backbone(bert):
    """Without a live model, verification loads the .keras file (keras_hub registers it)."""
    _, result = bert
    inputs = _token_inputs(2, 7, seed=3)
    report = result.verify([inputs[n] for n in result.graph.input_names])
    assert report.ok, report.table()


def test_bert_exports_with_dynamic_batch_and_steps(bert):
    _, result = bert
    batch, steps = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("steps", min=2, max=64)
    example = _token_inputs(2, 9)
    args = tuple(torch.from_numpy(example[n]) for n in result.graph.input_names)
    exported = torch.export.export(result.module, args, dynamic_shapes=tuple({0: batch, 1: steps} for _ in args))
    inputs = _token_inputs(5, 23)
    got = exported.module()(*[torch.from_numpy(inputs[n]) for n in result.graph.input_names])
    want = result.module(*[torch.from_numpy(inputs[n]) for n in result.graph.input_names])
    torch.testing.assert_close(got, want)


def test_gpt2_traces_with_torch_fx(gpt2):
    _, result = gpt2
    traced = torch.fx.symbolic_trace(result.module)
    inputs = _token_inputs(3, 10, segments=False)
    args = [torch.from_numpy(inputs[n]) for n in result.graph.input_names]
    torch.testing.assert_close(traced(*args), result.module(*args))


def test_gpt2_backbone_matches_tensorflow(gpt2):
    backbone, result = gpt2
    _verify(result, backbone, _token_inputs(3, 13, seed=1, segments=False))
    assert "use_causal_mask=True" in result.source_code


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("steps", [5, 23])
def test_bert_dynamic_batch_and_sequence_length(bert, batch, steps):
    backbone, result = bert
    _verify(result, backbone, _token_inputs(batch, steps, seed=batch + steps))


@pytest.mark.parametrize("steps", [5, 23])
def test_gpt2_dynamic_sequence_length(gpt2, steps):
    backbone, result = gpt2
    _verify(result, backbone, _token_inputs(7, steps, seed=steps, segments=False))


def test_bert_keeps_batch_steps_features_layout(bert):
    _, result = bert
    out = result.module(*[torch.from_numpy(_token_inputs(2, 9)[n]) for n in result.graph.input_names])
    assert out[0].shape == (2, 9, 32) and out[1].shape == (2, 32)


@pytest.mark.slow
def test_twelve_layer_bert_matches_tensorflow(tmp_path):
    backbone = keras_hub.models.BertBackbone(**{**SMALL, "num_layers": 12})
    _perturb(backbone)
    backbone.save(tmp_path / "bert12.keras")
    result = tf2torch.convert(str(tmp_path / "bert12.keras"))
    _verify(result, backbone, _token_inputs(3, 17), tolerance=1e-4)


@pytest.mark.parametrize("mask_zero", [False, True], ids=["unmasked", "mask_zero"])
def test_transformer_encoder_layer_in_a_functional_model(keras, tmp_path, mask_zero):
    ids = keras.Input((None,), dtype="int32")
    x = keras_hub.layers.TokenAndPositionEmbedding(50, 32, 16, mask_zero=mask_zero, name="embed")(ids)
    x = keras_hub.layers.TransformerEncoder(24, 4, dropout=0.1, normalize_first=True, name="enc")(x)
    x = keras_hub.layers.TransformerDecoder(20, 2, name="dec")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(ids, keras.layers.Dense(3)(x))
    tokens = np.random.default_rng(5).integers(1, 50, (4, 12)).astype("int32")
    tokens[1, 8:] = 0  # right padding
    tokens[2, :5] = 0  # left padding
    tokens[3, [2, 3, 9]] = 0  # holes
    convert_and_compare(model, tmp_path, inputs=[tokens])


# -- a text classifier with the user's own custom transformer layer ---------------------


class TorchTransformerBlock(torch.nn.Module):
    """The user's PyTorch twin of their Keras TransformerBlock (same parameter names)."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = torch.nn.Parameter(torch.empty(dim, 3 * dim))
        self.out = torch.nn.Parameter(torch.empty(dim, dim))
        self.ff1 = torch.nn.Linear(dim, ff_dim)
        self.ff2 = torch.nn.Linear(ff_dim, dim)
        self.norm1 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.norm2 = torch.nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (x @ self.qkv).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        att = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        x = self.norm1(x + att.transpose(1, 2).flatten(2) @ self.out)
        return self.norm2(x + self.ff2(torch.relu(self.ff1(x))))


@pytest.fixture
def transformer_block(keras):
    ops = keras.ops

    @keras.saving.register_keras_serializable(package="tf2torch_tests")
    class TransformerBlock(keras.layers.Layer):
        def __init__(self, num_heads=2, ff_dim=16, **kwargs):
            super().__init__(**kwargs)
            self.num_heads, self.ff_dim = num_heads, ff_dim

        def build(self, input_shape):
            d, f = input_shape[-1], self.ff_dim
            shapes = {"qkv": (d, 3 * d), "out": (d, d), "ff1_kernel": (d, f), "ff1_bias": (f,), "ff2_kernel": (f, d),
                      "ff2_bias": (d,), "norm1_gamma": (d,), "norm1_beta": (d,), "norm2_gamma": (d,), "norm2_beta": (d,)}
            for name, shape in shapes.items():
                setattr(self, name, self.add_weight(shape=shape, name=name, initializer="random_normal"))

        def norm(self, x, gamma, beta):
            mean = ops.mean(x, axis=-1, keepdims=True)
            var = ops.var(x, axis=-1, keepdims=True)
            return (x - mean) / ops.sqrt(var + 1e-6) * gamma + beta

        def call(self, x):
            d = x.shape[-1]
            h = self.num_heads
            qkv = ops.reshape(ops.matmul(x, self.qkv), (-1, ops.shape(x)[1], 3, h, d // h))
            q, k, v = (ops.transpose(qkv[:, :, i], (0, 2, 1, 3)) for i in range(3))
            scores = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(d // h), axis=-1)
            att = ops.reshape(ops.transpose(ops.matmul(scores, v), (0, 2, 1, 3)), (-1, ops.shape(x)[1], d))
            x = self.norm(x + ops.matmul(att, self.out), self.norm1_gamma, self.norm1_beta)
            ff = ops.matmul(ops.relu(ops.matmul(x, self.ff1_kernel) + self.ff1_bias), self.ff2_kernel) + self.ff2_bias
            return self.norm(x + ff, self.norm2_gamma, self.norm2_beta)

        def get_config(self):
            return {**super().get_config(), "num_heads": self.num_heads, "ff_dim": self.ff_dim}

    yield TransformerBlock
    tf2torch.unregister_layer("TransformerBlock")


def test_custom_transformer_block_classifier_converts_once_registered(keras, tmp_path, transformer_block):
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(60, 16)(ids)
    x = transformer_block(num_heads=2, ff_dim=24, name="block")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(ids, keras.layers.Dense(4, activation="softmax")(x))
    path = tmp_path / "unregistered.keras"
    model.save(path)
    with pytest.raises(tf2torch.UnsupportedLayers, match=r"block \(TransformerBlock\)"):
        tf2torch.convert(str(path))

    @tf2torch.register_layer("TransformerBlock")
    def convert_block(config: dict, weights: list[np.ndarray]) -> tf2torch.CustomLayer:
        qkv, out, w1, b1, w2, b2, g1, be1, g2, be2 = weights
        state = {
            "qkv": qkv, "out": out, "ff1.weight": w1.T, "ff1.bias": b1, "ff2.weight": w2.T, "ff2.bias": b2,
            "norm1.weight": g1, "norm1.bias": be1, "norm2.weight": g2, "norm2.bias": be2,
        }
        kwargs = {"dim": int(qkv.shape[0]), "num_heads": config["num_heads"], "ff_dim": config["ff_dim"]}
        return tf2torch.CustomLayer(TorchTransformerBlock, kwargs, state)

    inputs = [np.random.default_rng(6).integers(0, 60, (5, 9)).astype("int32")]
    result = convert_and_compare(model, tmp_path, inputs=inputs)
    assert "from test_transformers import TorchTransformerBlock" in result.source_code


def test_keras_hub_resnet_backbone_walks_its_functional_graph(tmp_path):
    """A keras_hub backbone without an expansion of its own: Keras builds it (keras_hub is
    library code: no opt-in needed), its functional graph is walked layer by layer."""
    from conftest import perturb_weights, set_batchnorm_statistics

    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(33, 35, 3),
    )
    perturb_weights(backbone)
    set_batchnorm_statistics(backbone, np.random.default_rng(0).standard_normal((4, 33, 35, 3)).astype("float32"))
    path = tmp_path / "resnet.keras"
    backbone.save(str(path))
    result = tf2torch.convert(str(path))
    assert "nn.Conv2d(" in result.source_code and "traced call()" not in result.source_code  # all native
    report = result.verify(batch_size=2, keras_model=backbone)
    assert report.ok, report.table()
    from tf2torch.inspect_model import inspect_model

    rows = inspect_model(str(path))
    assert any(r.class_name == "Conv2D" for r in rows) and all(r.supported for r in rows)


def test_keras_hub_vit_backbone_matches_tensorflow(tmp_path):
    """Patches by a strided conv, a class token tiled to the run-time batch, position
    embeddings: walked as a functional graph, keras_hub's layers traced where they must be."""
    backbone = keras_hub.models.ViTBackbone(image_shape=(28, 28, 3), patch_size=7, num_layers=2, num_heads=2,
                                            hidden_dim=8, mlp_dim=16)
    _perturb(backbone)
    path = tmp_path / "vit.keras"
    backbone.save(str(path))
    result = tf2torch.convert(str(path))
    images = np.random.default_rng(3).standard_normal((3, 28, 28, 3)).astype("float32")
    report = result.verify([images], keras_model=backbone)
    assert report.outputs and report.ok, report.table()


def test_keras_hub_llama_backbone_matches_tensorflow(tmp_path):
    """A small decoder-only LLM (grouped-query attention, rotary embeddings computed from a
    float `arange` of the run-time sequence length, RMS norms, gated MLP)."""
    backbone = keras_hub.models.LlamaBackbone(vocabulary_size=97, num_layers=2, num_query_heads=4,
                                              num_key_value_heads=2, hidden_dim=32, intermediate_dim=64)
    _perturb(backbone)
    path = tmp_path / "llama.keras"
    backbone.save(str(path))
    result = tf2torch.convert(str(path))
    for batch, steps, seed in ((3, 9, 0), (2, 5, 1)):  # another sequence length too
        inputs = _token_inputs(batch, steps, seed=seed, segments=False)
        inputs["token_ids"] %= 97
        _verify(result, backbone, inputs)
