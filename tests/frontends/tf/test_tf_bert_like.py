"""The pattern an HF `TFBertModel` SavedModel is made of (transformers is not a dependency, so it
is re-created): embedding lookups by `tf.gather` on variables (ResourceGather: a resource has
no shape, so TensorFlow infers an output of unknown rank), position ids from
`tf.range(tf.shape(ids)[1])`, Dense layers as Tensordot, heads split and merged by
`tf.shape`-driven reshapes, an additive attention mask, and a dict of outputs. The SavedModel
converts and matches TensorFlow at two batch / sequence sizes with one converted module."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
from tf_frontend_helpers import forward_source

tf = pytest.importorskip("tensorflow")

import tf2torch

VOCAB, STEPS, WIDTH, HEADS = 50, 16, 8, 2


class TinyBert(tf.Module):
    def __init__(self, seed: int = 3) -> None:
        super().__init__(name="tiny_bert")
        rng = np.random.default_rng(seed)

        def var(name, *shape, scale=0.5):
            return tf.Variable((rng.standard_normal(shape) * scale).astype(np.float32), name=name)

        self.word_embeddings = var("word_embeddings", VOCAB, WIDTH)
        self.position_embeddings = var("position_embeddings", STEPS, WIDTH)
        self.ln_gamma, self.ln_beta = var("ln_gamma", WIDTH) + 1.0, var("ln_beta", WIDTH)
        self.qkv_kernel, self.qkv_bias = var("qkv_kernel", WIDTH, 3 * WIDTH), var("qkv_bias", 3 * WIDTH)
        self.out_kernel, self.out_bias = var("out_kernel", WIDTH, WIDTH), var("out_bias", WIDTH)
        self.ffn_in, self.ffn_out = var("ffn_in", WIDTH, 2 * WIDTH), var("ffn_out", 2 * WIDTH, WIDTH)
        self.pool_kernel = var("pool_kernel", WIDTH, WIDTH)

    def _layer_norm(self, x):
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + 1e-12) * self.ln_gamma + self.ln_beta

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32, name="input_ids"),
                                  tf.TensorSpec((None, None), tf.int32, name="attention_mask")])
    def __call__(self, input_ids, attention_mask):
        batch, steps = tf.shape(input_ids)[0], tf.shape(input_ids)[1]
        positions = tf.range(steps)
        x = tf.gather(self.word_embeddings, input_ids) + tf.gather(self.position_embeddings, positions)[None]
        x = self._layer_norm(x)
        qkv = tf.tensordot(x, self.qkv_kernel, axes=1) + self.qkv_bias

        def heads(t):
            return tf.transpose(tf.reshape(t, [batch, steps, HEADS, WIDTH // HEADS]), [0, 2, 1, 3])

        q, k, v = (heads(t) for t in tf.split(qkv, 3, axis=-1))
        scale = tf.math.rsqrt(tf.cast(tf.shape(q)[-1], tf.float32))
        additive = (1.0 - tf.cast(attention_mask[:, None, None, :], tf.float32)) * -10000.0
        probs = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) * scale + additive, axis=-1)
        context = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [batch, steps, WIDTH])
        x = x + tf.tensordot(context, self.out_kernel, axes=1) + self.out_bias
        x = x + tf.tensordot(tf.nn.gelu(tf.tensordot(x, self.ffn_in, axes=1)), self.ffn_out, axes=1)
        pooled = tf.tanh(tf.matmul(x[:, 0], self.pool_kernel))
        return {"last_hidden_state": x, "pooler_output": pooled}


def _inputs(names, batch, steps, seed):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, steps), np.int32)
    mask[0, steps - 2:] = 0  # padding in the first sequence
    arrays = {"input_ids": rng.integers(0, VOCAB, (batch, steps)).astype(np.int32), "attention_mask": mask}
    return [arrays[n] for n in names]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    module = TinyBert()
    path = tmp_path_factory.mktemp("bert_like") / "tiny_bert"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    return path


def test_bert_like_savedmodel_with_resource_gather_converts_exactly(saved_model):
    loaded = tf.saved_model.load(str(saved_model))
    graph = loaded.signatures["serving_default"].graph
    called = [f for f in graph.as_graph_def().library.function]
    assert any(n.op == "ResourceGather" for f in called for n in f.node_def), "the pattern under test is missing"
    result = tf2torch.convert(str(saved_model))
    body = forward_source(result.source_code)
    assert "nn.Embedding(50, 8)" in result.source_code
    assert "arange(" in body and "reshape(3" not in body
    assert "F.scaled_dot_product_attention(" in body and "attn_mask=" in body  # the masked attention, folded
    for batch, steps, seed in ((3, 11, 0), (2, 5, 1)):
        report = result.verify(_inputs(result.graph.input_names, batch, steps, seed), tolerance=1e-5)
        assert len(report.outputs) == 2
        assert report.ok, report.table()


def test_bert_like_module_exports_with_dynamic_batch_and_steps(saved_model):
    import torch

    result = tf2torch.convert(str(saved_model))
    names = result.graph.input_names
    example = tuple(torch.from_numpy(a) for a in _inputs(names, 3, 11, 0))
    batch, steps = torch.export.Dim("batch"), torch.export.Dim("steps", max=STEPS)
    exported = torch.export.export(result.module, example, dynamic_shapes=tuple({0: batch, 1: steps} for _ in names))
    arrays = _inputs(names, 2, 5, 1)
    got = exported.module()(*(torch.from_numpy(a) for a in arrays))
    expected = tf.saved_model.load(str(saved_model)).signatures["serving_default"](
        **{n: tf.constant(a) for n, a in zip(names, arrays)})
    for out, key in zip(got, sorted(expected)):
        ref = expected[key].numpy()
        np.testing.assert_allclose(out.detach().numpy(), ref, atol=1e-5 * np.abs(ref).max())
