"""Acceptance of issue 16: a converter that drops a bias is isolated-FAILED in the HTML and
JSON reports, deeper layers show only drift, and --minimize reproduces the same error."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

import tf2torch
from conftest import perturb_weights
from tf2torch.converters.linear import convert_dense
from tf2torch.converters.registry import CONVERTERS


def _dense_dropping_culprit_bias(node, builder):
    """A deliberately broken converter (test only): the layer named 'culprit' loses its bias."""
    if node.source.name == "culprit":
        node = dataclasses.replace(node, params={k: v for k, v in node.params.items() if k != "bias"})
    convert_dense(node, builder)


@pytest.fixture
def broken(keras, tmp_path, monkeypatch):
    inp = keras.Input((9, 7, 3))
    x = keras.layers.Conv2D(5, 3, strides=2, padding="same", name="stem")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Dense(6, name="culprit")(x)
    x = keras.layers.Dense(4, activation="tanh", name="deeper")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inp, keras.layers.Dense(3, name="head")(x))
    perturb_weights(model)
    path = tmp_path / "broken.keras"
    model.save(path)
    monkeypatch.setitem(CONVERTERS, "dense", _dense_dropping_culprit_bias)
    return model, tf2torch.convert(str(path))


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def having(self, tag, *classes):
        return [a for t, a in self.elements if t == tag and set(classes) <= set((a.get("class") or "").split())]


def test_html_marks_the_broken_layer_and_only_drift_after_it(broken, tmp_path):
    model, result = broken
    report = result.verify_layers(keras_model=model, batch_size=3)
    train = result.verify_layers(keras_model=model, batch_size=3, training=True)
    report.save_html(tmp_path / "verification.html", train)
    page = _Collect()
    page.feed((tmp_path / "verification.html").read_text())

    names = ["stem", "bn", "relu", "culprit", "deeper", "pool", "head"]
    for mode in ("eval", "train"):
        for series in ("isolated", "cumulative"):
            assert [a["data-layer"] for a in page.having("circle" if series == "isolated" else "rect", "point", series, mode)] == names
        statuses = {a["data-layer"]: a["class"].split()[-1] for a in page.having("circle", "point", "isolated", mode)}
        assert statuses == {n: "FAILED" if n == "culprit" else "OK" for n in names}
    assert [a["data-mode"] for a in page.having("line", "first-divergence")] == ["eval", "train"]
    assert page.having("line", "tolerance")
    rows = {a["data-layer"]: a["class"] for a in page.having("tr", "layer")}
    assert list(rows) == names and rows["culprit"] == "layer FAILED" and rows["head"] == "layer OK"
    assert "http" not in "".join(a.get("src", "") + a.get("href", "") for _, a in page.elements)  # self-contained

    checks = {c.name: c for c in report.layers}
    assert checks["culprit"].max_rel_error > 1e-2  # isolated: its own error
    assert checks["head"].max_rel_error <= report.tolerance < checks["head"].cumulative_rel_error  # drift only
    # The table shows the layer's own model.py lines, with model.py's line numbers.
    lines = result.source_code.splitlines()
    assert checks["culprit"].code and all(lines[n - 1] == text for n, text in checks["culprit"].code)
    assert any("self.culprit = nn.Linear(5, 6, bias=False)" in text for _, text in checks["culprit"].code)
    assert any("self.culprit(" in text for _, text in checks["culprit"].code)


def test_json_keeps_the_numbers_and_a_schema_version(broken, tmp_path):
    model, result = broken
    report = result.verify_layers(keras_model=model, batch_size=2)
    report.save_json(tmp_path / "verification.json")
    document = json.loads((tmp_path / "verification.json").read_text())
    assert document["schema_version"] == 1
    (mode,) = document["modes"]
    assert mode["first_divergence"] == "culprit" and mode["first_drift"] == "culprit"
    by_name = {layer["name"]: layer for layer in mode["layers"]}
    assert by_name["culprit"]["isolated_rel_error"] == report.first_divergence.max_rel_error
    assert document["summary"]["parameters"] == sum(p.numel() for p in result.module.parameters())
    assert document["summary"]["batchnorm_layers"] == 1


def test_minimize_writes_a_repro_printing_the_same_error(broken, tmp_path):
    model, result = broken
    report = result.verify_layers(keras_model=model, batch_size=2)
    out = report.minimize(tmp_path / "repro")
    assert sorted(p.name for p in out.iterdir()) == ["input.npz", "layer.keras", "model.py", "model.safetensors", "reproduce.py"]
    assert len((out / "reproduce.py").read_text().splitlines()) <= 25
    run = subprocess.run([sys.executable, str(out / "reproduce.py")], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    printed = float(run.stdout.split("relative to max |Keras output|")[1])
    assert np.isclose(printed, report.first_divergence.max_rel_error, rtol=1e-3)


def test_cli_verify_json_fp64_and_minimize(broken, tmp_path, capsys):
    from tf2torch.cli import main

    _, result = broken
    html, out = tmp_path / "report.html", tmp_path / "repro"
    code = main(["verify", result.source_path, "--json", "--fp64", "--minimize", str(out), "--html", str(html)])
    assert code == 1  # the model outputs differ too
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    (mode,) = document["modes"]
    assert document["ok"] is False and mode["first_divergence"] == "culprit"
    # In float64 the dropped bias is still there: not rounding.
    assert mode["fp64_checked"] is True and mode["drift_is_rounding"] is False
    assert "<svg" in html.read_text() and (out / "reproduce.py").is_file()
    assert "Reproduction of layer 'culprit'" in captured.err


def test_cli_convert_verify_writes_html_and_json(broken, tmp_path):
    from tf2torch.cli import main

    _, result = broken
    out = tmp_path / "out"
    assert main(["convert", result.source_path, "-o", str(out), "--verify", "--quiet"]) == 1
    document = json.loads((out / "verification.json").read_text())
    assert document["ok"] is False and document["modes"][0]["first_divergence"] == "culprit"
    assert 'class="point isolated eval FAILED" fill="#1f6feb" data-layer="culprit"' in (out / "verification.html").read_text()


def test_keras2_h5_minimize_and_fp64(tmp_path, monkeypatch):
    import tf_keras

    inp = tf_keras.Input((5, 3))
    x = tf_keras.layers.Conv1D(4, 3, padding="same", name="stem")(inp)
    x = tf_keras.layers.Dense(6, name="culprit")(x)
    model = tf_keras.Model(inp, tf_keras.layers.Dense(2, name="head")(x))
    perturb_weights(model)
    path = tmp_path / "keras2.h5"
    model.save(path)
    monkeypatch.setitem(CONVERTERS, "dense", _dense_dropping_culprit_bias)
    result = tf2torch.convert(str(path))
    report = result.verify_layers(keras_model=model, batch_size=3, fp64=True)
    assert report.first_divergence.name == "culprit" and report.drift_is_rounding is False
    out = report.minimize(tmp_path / "repro")
    assert (out / "layer.h5").is_file() and "import tf_keras as keras" in (out / "reproduce.py").read_text()
    run = subprocess.run([sys.executable, str(out / "reproduce.py")], capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr
    printed = float(run.stdout.split("relative to max |Keras output|")[1])
    assert np.isclose(printed, report.first_divergence.max_rel_error, rtol=1e-3)
