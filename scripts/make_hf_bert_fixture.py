"""Write the tiny Hugging Face `TFBertModel` SavedModel used by tests/e2e/test_hf_bert_saved_model.py.

Needs `transformers` 4.x (TF classes were removed in 5), which tf2torch does not depend on.
Install it outside the project's environment, e.g.

    pip install --target /tmp/hf-site 'transformers<5' 'tokenizers>=0.22,<=0.23.0' \
        'huggingface-hub>=0.34,<1.0' --no-deps
    PYTHONPATH=/tmp/hf-site python scripts/make_hf_bert_fixture.py

It writes tests/fixtures/hf_tf_bert/ (the SavedModel: dynamic batch and sequence length,
inputs input_ids / attention_mask / token_type_ids) and tests/fixtures/hf_tf_bert_expected.npz
(fixed inputs and TensorFlow's outputs for them, for tests that run without TensorFlow).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # transformers' TF models are tf_keras models

import numpy as np
import tensorflow as tf
from transformers import BertConfig, TFBertModel

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
SAVED_MODEL = FIXTURES / "hf_tf_bert"
EXPECTED = FIXTURES / "hf_tf_bert_expected.npz"


def build_model() -> TFBertModel:
    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64, type_vocab_size=2)
    tf.keras.utils.set_random_seed(0)
    model = TFBertModel(config)
    model(model.dummy_inputs)  # creates the variables
    # Non-trivial LayerNorm parameters and biases (they are initialised to ones / zeros).
    rng = np.random.default_rng(0)
    for weight in model.weights:
        value = weight.numpy()
        weight.assign(value + rng.normal(0.0, 0.05, value.shape).astype(value.dtype))
    return model


def fixed_inputs() -> dict[str, np.ndarray]:
    """Two right-padded rows of seven tokens, two segments."""
    rng = np.random.default_rng(1)
    input_ids = rng.integers(1, 99, (2, 7)).astype(np.int32)
    attention_mask = np.ones((2, 7), np.int32)
    attention_mask[1, 4:] = 0
    input_ids[attention_mask == 0] = 0
    token_type_ids = (np.arange(7)[None, :] >= 3).astype(np.int32).repeat(2, 0)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def main() -> None:
    model = build_model()
    spec = {name: tf.TensorSpec((None, None), tf.int32, name=name)
            for name in ("input_ids", "attention_mask", "token_type_ids")}

    @tf.function(input_signature=[spec])
    def serve(inputs):
        outputs = model(inputs, training=False)
        return {"last_hidden_state": outputs.last_hidden_state, "pooler_output": outputs.pooler_output}

    # Saved from a plain tf.Module holding the weights: saving the Keras model itself would add
    # every layer's traced call functions (a 1.3 MB saved_model.pb instead of a few hundred KB).
    holder = tf.Module()
    holder.weights = list(model.weights)
    holder.serve = serve
    shutil.rmtree(SAVED_MODEL, ignore_errors=True)
    tf.saved_model.save(holder, str(SAVED_MODEL), signatures={"serving_default": serve.get_concrete_function()})
    inputs = fixed_inputs()
    outputs = serve({k: tf.constant(v) for k, v in inputs.items()})
    np.savez(EXPECTED, **inputs, **{k: v.numpy() for k, v in outputs.items()})
    size = sum(f.stat().st_size for f in SAVED_MODEL.rglob("*") if f.is_file())
    print(f"wrote {SAVED_MODEL} ({size / 1024:.0f} KiB) and {EXPECTED}")


if __name__ == "__main__":
    main()
