"""TF.js graph-models (GraphDef JSON + shards written by the tensorflowjs converter) through
the TF frontend, compared with TensorFlow: on the source model (expected.npz) and executing
the GraphDef itself (grappler's fused ops run by TensorFlow's own kernels)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from tfjs_fixtures import GRAPH, GRAPH_FLOAT16, copy_fixture, edit_model_json, expected, run_nchw

import tf2torch
from tf2torch.errors import BadModelFile, VerificationUnavailable

pytest.importorskip("tensorflow")

TOLERANCE = 1e-5
CONV = "StatefulPartitionedCall/small_cnn/relu/Relu"  # _FusedConv2D(BiasAdd, Relu)
DENSE = "StatefulPartitionedCall/small_cnn/logits/BiasAdd"  # _FusedMatMul(BiasAdd)


def _node(document: dict, name: str) -> dict:
    return next(n for n in document["modelTopology"]["node"] if n["name"] == name)


def _fuse(document: dict, name: str, ops: list[str], extra_inputs: int = 0, **attrs) -> None:
    node = _node(document, name)
    node["attr"]["fused_ops"] = {"list": {"s": [base64.b64encode(op.encode()).decode() for op in ops]}}
    node["attr"]["num_args"] = {"i": str(1 + extra_inputs)}
    node["attr"]["TArgs"] = {"list": {"type": ["DT_FLOAT"] * (1 + extra_inputs)}}
    node["attr"].update(attrs)


def _const(document: dict, name: str, values: list[float]) -> str:
    document["modelTopology"]["node"].append({"name": name, "op": "Const", "attr": {
        "dtype": {"type": "DT_FLOAT"},
        "value": {"tensor": {"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": str(len(values))}]},
                             "floatVal": values}}}})
    return name


def test_graph_model_matches_tensorflow():
    result = tf2torch.convert(str(GRAPH / "model.json"))
    x, y = expected(GRAPH)
    out = run_nchw(result.module, x)
    assert np.abs(out - y).max() <= TOLERANCE * np.abs(y).max()
    assert all(p.requires_grad for p in result.module.parameters())
    assert result.graph.input_names == ["image"] and result.graph.output_names == ["logits"]  # the signature's keys
    assert result.verify(batch_size=3).ok  # TensorFlow running the GraphDef
    with pytest.raises(VerificationUnavailable):
        result.verify(training=True)


def test_float16_graph_model_is_dequantized_with_a_warning():
    with pytest.warns(UserWarning, match=r"weights are stored quantized \(float16\)"):
        result = tf2torch.convert(str(GRAPH_FLOAT16 / "model.json"))
    assert result.verify(batch_size=3).ok  # TensorFlow on the GraphDef with the float16 weights widened
    x, y = expected(GRAPH_FLOAT16)  # the float32 source: float16 weights round at ~5e-4 relative
    assert np.abs(run_nchw(result.module, x) - y).max() <= 1e-2 * np.abs(y).max()


FUSIONS = [
    ("conv-leaky-relu", CONV, ["BiasAdd", "LeakyRelu"], {"leakyrelu_alpha": {"f": 0.3}}),
    ("conv-elu", CONV, ["BiasAdd", "Elu"], {}),
    ("conv-bias-only", CONV, ["BiasAdd"], {}),
    ("matmul-bias-sigmoid", DENSE, ["BiasAdd", "Sigmoid"], {}),
    ("matmul-bias-tanh", DENSE, ["BiasAdd", "Tanh"], {}),
]


@pytest.mark.parametrize("node, ops, attrs", [f[1:] for f in FUSIONS], ids=[f[0] for f in FUSIONS])
def test_fused_ops_are_split_as_tensorflow_computes_them(tmp_path, node, ops, attrs):
    model_json = copy_fixture(GRAPH, tmp_path / "g")
    edit_model_json(model_json, lambda d: _fuse(d, node, ops, **attrs))
    result = tf2torch.convert(str(model_json))
    assert result.verify(batch_size=3).ok


def test_fused_batch_norm_with_inline_constants(tmp_path):
    model_json = copy_fixture(GRAPH, tmp_path / "g")

    def edit(document):
        rng = np.random.default_rng(3)
        stats = [_const(document, f"bn_{k}", [float(v) for v in values]) for k, values in (
            ("scale", rng.uniform(0.5, 1.5, 8)), ("offset", rng.normal(0, 0.3, 8)),
            ("mean", rng.normal(0, 0.5, 8)), ("variance", rng.uniform(0.3, 2.0, 8)))]
        node = _node(document, CONV)
        node["input"] = node["input"][:2] + stats
        _fuse(document, CONV, ["FusedBatchNorm", "Relu"], extra_inputs=3, epsilon={"f": 0.001})

    edit_model_json(model_json, edit)
    assert tf2torch.convert(str(model_json)).verify(batch_size=3).ok


def test_tfjs_prelu_computes_leaky_relu_with_a_constant_alpha(tmp_path):
    """Prelu is TF.js' own op (TensorFlow cannot run it): compared with TensorFlow running
    the same graph with LeakyRelu(0.3)."""
    prelu_json = copy_fixture(GRAPH, tmp_path / "prelu")

    def prelu(document):
        node = _node(document, CONV)
        node["input"].append(_const(document, "alpha", [0.3] * 8))
        _fuse(document, CONV, ["BiasAdd", "Prelu"], extra_inputs=1)

    edit_model_json(prelu_json, prelu)
    leaky_json = copy_fixture(GRAPH, tmp_path / "leaky")
    edit_model_json(leaky_json, lambda d: _fuse(d, CONV, ["BiasAdd", "LeakyRelu"], leakyrelu_alpha={"f": 0.3}))
    reference = tf2torch.convert(str(leaky_json))._keras_model
    assert tf2torch.convert(str(prelu_json)).verify(batch_size=3, keras_model=reference).ok


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["modelTopology"]["node"].append({"name": "n", "op": 7}), r"modelTopology is not a GraphDef in JSON"),
    (lambda d: d["weightsManifest"][0]["weights"][0].update(name="image"),
     r"weight 'image' of weightsManifest names a Placeholder node, not a Const node"),
    (lambda d: _node(d, "StatefulPartitionedCall/small_cnn/flatten/Const")["attr"]["value"]["tensor"].update(
        dtype="DT_INT64"), r"Const node '.*flatten/Const' is int64, its weight in weightsManifest is int32"),
    (lambda d: d["weightsManifest"][0]["weights"].pop(),
     r"shards hold more bytes than the weights listed need"),
    (lambda d: _fuse(d, CONV, ["BiasAdd", "Gelu"]), r"fuses \['BiasAdd', 'Gelu'\], which tf2torch cannot split"),
], ids=["not-graphdef", "weight-on-placeholder", "dtype-mismatch", "weight-missing", "unknown-fusion"])
def test_bad_graph_model_is_a_clear_error(tmp_path, edit, message):
    model_json = copy_fixture(GRAPH, tmp_path / "g")
    edit_model_json(model_json, edit)
    with pytest.raises(BadModelFile, match=message) as info:
        tf2torch.convert(str(model_json))
    assert str(info.value).startswith(str(model_json))


def test_const_without_value_or_weight_is_named(tmp_path):
    model_json = copy_fixture(GRAPH, tmp_path / "g")
    shard = model_json.parent / "group1-shard1of1.bin"

    def edit(document):
        weights = document["weightsManifest"][0]["weights"]
        last = weights.pop()
        shard.write_bytes(shard.read_bytes()[:-4 * int(np.prod(last["shape"]))])

    edit_model_json(model_json, edit)
    with pytest.raises(BadModelFile, match=r"Const node '.*' has no value in modelTopology and no weight"):
        tf2torch.convert(str(model_json))


def test_output_names_replace_the_signature():
    """--output-names: a fused node's name (kept by its last part) as the output."""
    result = tf2torch.convert(str(GRAPH / "model.json"), outputs=[CONV])
    assert result.graph.output_names == [CONV]
    assert [tuple(v.spec.shape) for v in result.graph.outputs] == [(None, 8, 7, 8)]  # the conv output, NHWC
    assert result.verify(batch_size=3).ok
