"""verification.html in a real browser (headless Chromium): `make test-browser`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import tf2torch
from conftest import perturb_weights

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from report_screenshot import chromium, dump_dom, screenshot  # scripts/ is not a package

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium() is None, reason="needs chromium: make test-browser installs it"),
]


def test_chromium_renders_plot_and_table(keras, tmp_path):
    inp = keras.Input((11, 9, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inp, keras.layers.Dense(3, name="head")(x))
    perturb_weights(model)
    model.save(tmp_path / "small.keras")
    result = tf2torch.convert(str(tmp_path / "small.keras"))
    report = result.verify_layers(keras_model=model, batch_size=3)
    train = result.verify_layers(keras_model=model, batch_size=3, training=True)
    html = tmp_path / "verification.html"
    report.save_html(html, train)

    dom = dump_dom(html)
    assert '<svg id="error-plot"' in dom and dom.count('class="point isolated eval OK"') == 4
    assert '<table id="layers">' in dom and dom.count('<tr class="layer OK"') == 4
    assert '<table id="summary">' in dom
    png = screenshot(html, tmp_path / "report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
