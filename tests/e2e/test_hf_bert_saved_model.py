"""A real Hugging Face `TFBertModel` (transformers 4.57, hidden 32, 2 layers, 4 heads, vocab 99)
saved as a SavedModel with a dynamic batch and sequence length: tests/fixtures/hf_tf_bert,
written by scripts/make_hf_bert_fixture.py (which needs transformers; these tests do not).
Converted op by op, it matches the outputs TensorFlow computed when the fixture was written,
and TensorFlow running the SavedModel at other sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

tf = pytest.importorskip("tensorflow")

import tf2torch

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SAVED_MODEL = FIXTURES / "hf_tf_bert"
INPUT_NAMES = {"input_ids", "attention_mask", "token_type_ids"}


@pytest.fixture(scope="module")
def bert():
    return tf2torch.convert(str(SAVED_MODEL))


def _tokens(batch: int, steps: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, steps), np.int32)
    for row in range(1, batch):
        mask[row, max(1, steps - 2 * row):] = 0
    return {"input_ids": np.where(mask == 1, rng.integers(1, 99, (batch, steps)), 0).astype(np.int32),
            "attention_mask": mask,
            "token_type_ids": (np.arange(steps)[None, :] >= steps // 2).astype(np.int32).repeat(batch, 0)}


def test_matches_the_outputs_tensorflow_computed_for_the_fixture(bert):
    expected = np.load(SAVED_MODEL.with_name("hf_tf_bert_expected.npz"), allow_pickle=False)
    assert set(bert.graph.input_names) == INPUT_NAMES
    assert bert.graph.output_names == ["last_hidden_state", "pooler_output"]
    with torch.no_grad():
        outputs = bert.module(*[torch.from_numpy(expected[n]) for n in bert.graph.input_names])
    assert outputs._fields == ("last_hidden_state", "pooler_output")  # a NamedTuple with TF's output names
    for name, output in zip(bert.graph.output_names, outputs):
        reference = expected[name]
        assert output.shape == reference.shape
        assert np.abs(output.numpy() - reference).max() <= 1e-5 * np.abs(reference).max(), name


@pytest.mark.parametrize(("batch", "steps"), [(3, 11), (1, 64)])
def test_matches_tensorflow_at_other_batch_and_sequence_sizes(bert, batch, steps):
    inputs = _tokens(batch, steps, seed=steps)
    report = bert.verify([inputs[n] for n in bert.graph.input_names], tolerance=1e-5)
    assert len(report.outputs) == 2, report.table()
    assert report.ok, report.table()


def test_embeddings_and_dense_layers_come_back_as_modules(bert):
    source = bert.source_code
    assert "last_hidden_state  float32[N, ?, 32]" in source and "pooler_output  float32[N, 32]" in source
    assert source.count("nn.Embedding(") == 3  # word, position, token type
    assert source.count("nn.Linear(") == 2 * 6 + 1  # q, k, v, out, ffn in, ffn out per layer; the pooler
    # tf_keras' LayerNormalization (tf.nn.batch_normalization's `x * m + (beta - mean * m)`)
    assert source.count("nn.LayerNorm(32, eps=1e-12)") == 1 + 2 * 2 and "Variable(" not in source
