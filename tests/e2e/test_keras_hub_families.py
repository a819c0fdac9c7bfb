"""keras_hub model families beyond BERT / GPT-2 / Llama / ResNet / ViT (test_transformers.py),
built from small configs with random weights, saved as .keras and converted from the file
(keras_hub is installed: its code is library code, no opt-in needed), then compared with
Keras at two batch / sequence sizes with one converted module:

- Mistral: grouped-query attention, rotary embeddings, a sliding window shorter than the sequence;
- Gemma: logit soft-capping (attention and final), a sliding window from a run-time band
  (`MatrixBandPart` with `min(steps, window - 1)`), post-attention / post-FFW norms;
- T5: encoder-decoder with relative position buckets;
- Whisper: a convolutional audio front-end, encoder and decoder;
- task models: a `BertTextClassifier` and a `ResNetImageClassifier` (a backbone nested in a
  task: its layers are inlined and walked), and a functional model reading a nested
  backbone's dict output by key.
"""

from __future__ import annotations

import numpy as np
import pytest

import tf2torch

keras_hub = pytest.importorskip("keras_hub")

VOCAB = 97


def _perturb(model) -> None:
    rng = np.random.default_rng(0)
    for w in model.weights:
        value = np.asarray(w.numpy())
        if value.dtype.kind == "f":
            w.assign((value + rng.normal(0.0, 0.05, value.shape)).astype(value.dtype))


def _inputs(model, batch: int, steps: int, seed: int) -> dict[str, np.ndarray]:
    """Right-padded token ids and their masks (every row keeps at least one token), float
    features for other inputs, by the Keras input names."""
    rng = np.random.default_rng(seed)
    pad = np.ones((batch, steps), "int32")
    for row in range(1, batch):
        pad[row, max(1, steps - 2 * row):] = 0
    arrays = {}
    for tensor in model.inputs:
        name = tensor.path if hasattr(tensor, "path") else tensor.name
        name = name.split(":")[0]
        if "mask" in name:
            arrays[name] = pad
        elif "segment" in name:
            arrays[name] = (np.arange(steps)[None, :] >= steps // 2).astype("int32").repeat(batch, 0)
        elif "ids" in name:
            arrays[name] = np.where(pad == 1, rng.integers(1, VOCAB, (batch, steps)), 0).astype("int32")
        else:
            shape = [batch] + [steps if d is None else d for d in tensor.shape[1:]]
            arrays[name] = rng.standard_normal(shape).astype("float32")
    return arrays


def _convert_and_check(model, tmp_path, sizes=((3, 9), (2, 4)), tolerance: float = 1e-5):
    path = tmp_path / "model.keras"
    model.save(str(path))
    result = tf2torch.convert(str(path))
    for seed, (batch, steps) in enumerate(sizes):
        inputs = _inputs(model, batch, steps, seed)
        assert set(inputs) == set(result.graph.input_names)
        report = result.verify([inputs[n] for n in result.graph.input_names], keras_model=model, tolerance=tolerance)
        assert report.outputs, "verification compared nothing"
        assert report.ok, report.table()
    return result


@pytest.mark.slow
def test_mistral_backbone_with_a_sliding_window_matches_keras(tmp_path):
    backbone = keras_hub.models.MistralBackbone(
        vocabulary_size=VOCAB, num_layers=2, num_query_heads=4, num_key_value_heads=2, hidden_dim=32,
        intermediate_dim=64, sliding_window=4, rope_max_wavelength=500)
    _perturb(backbone)
    _convert_and_check(backbone, tmp_path)  # 9 steps: wider than the window; 4: not


def test_gemma_backbone_with_soft_capping_and_a_sliding_window_matches_keras(tmp_path):
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=VOCAB, num_layers=2, num_query_heads=4, num_key_value_heads=2, hidden_dim=32,
        intermediate_dim=64, head_dim=8, use_post_ffw_norm=True, use_post_attention_norm=True,
        attention_logit_soft_cap=5.0, final_logit_soft_cap=3.0, use_sliding_window_attention=True,
        sliding_window_size=4)
    _perturb(backbone)
    result = _convert_and_check(backbone, tmp_path)
    assert "torch.tanh(" in result.source_code  # the soft caps


@pytest.mark.slow
def test_t5_encoder_decoder_backbone_matches_keras(tmp_path):
    backbone = keras_hub.models.T5Backbone(vocabulary_size=VOCAB, num_layers=2, num_heads=4, hidden_dim=32,
                                           intermediate_dim=64, key_value_dim=8, dropout=0.0)
    _perturb(backbone)
    result = _convert_and_check(backbone, tmp_path)
    assert result.graph.input_names == ["encoder_token_ids", "encoder_padding_mask", "decoder_token_ids",
                                        "decoder_padding_mask"]  # the Keras model's input order


@pytest.mark.slow
def test_whisper_backbone_with_its_conv_front_end_matches_keras(tmp_path):
    backbone = keras_hub.models.WhisperBackbone(
        vocabulary_size=VOCAB, num_layers=2, num_heads=4, hidden_dim=32, intermediate_dim=64, num_mels=16,
        max_encoder_sequence_length=32, max_decoder_sequence_length=16)
    _perturb(backbone)
    result = _convert_and_check(backbone, tmp_path, sizes=((3, 9), (2, 5)))  # odd frame counts
    assert result.source_code.count("nn.Conv") == 2  # the two front-end convolutions


def test_bert_text_classifier_task_matches_keras(tmp_path):
    """A task model: a subclassed Functional whose backbone is nested and read by dict key."""
    backbone = keras_hub.models.BertBackbone(vocabulary_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=32,
                                             intermediate_dim=64, max_sequence_length=64)
    classifier = keras_hub.models.BertTextClassifier(backbone, num_classes=5, preprocessor=None)
    _perturb(classifier)
    result = _convert_and_check(classifier, tmp_path)
    assert "nn.Linear(32, 5)" in result.source_code


def test_a_nested_backbone_read_by_dict_key_gives_that_output(tmp_path):
    """Keras numbers a nested model's dict outputs in sorted key order: `pooled_output` is
    output 0 of a BERT backbone although its config lists `sequence_output` first. No user
    code runs here, so nothing else would catch reading the wrong one."""
    import keras

    backbone = keras_hub.models.BertBackbone(vocabulary_size=VOCAB, num_layers=1, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=32)
    outputs = backbone(backbone.input)
    head = keras.layers.Dense(3, name="head")(outputs["pooled_output"])
    tokens = keras.layers.Dense(2, name="tokens")(outputs["sequence_output"])
    model = keras.Model(backbone.input, [head, tokens])
    _perturb(model)
    _convert_and_check(model, tmp_path)


@pytest.mark.slow
def test_resnet_image_classifier_task_matches_keras(tmp_path):
    from conftest import set_batchnorm_statistics

    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(33, 35, 3))
    classifier = keras_hub.models.ResNetImageClassifier(backbone, num_classes=7, preprocessor=None, activation="softmax")
    _perturb(classifier)
    set_batchnorm_statistics(classifier, np.random.default_rng(0).standard_normal((4, 33, 35, 3)).astype("float32"))
    path = tmp_path / "classifier.keras"
    classifier.save(str(path))
    result = tf2torch.convert(str(path))
    # The nested backbone's layers are inlined into the task's graph and walked: all native.
    assert "nn.Conv2d(3, 64, kernel_size=3, stride=2" in result.source_code
    assert "traced call()" not in result.source_code
    images = np.random.default_rng(1).standard_normal((3, 33, 35, 3)).astype("float32")
    report = result.verify([images], keras_model=classifier)
    assert report.outputs and report.ok, report.table()
