"""ResNet152 (issue 16 acceptance): fp32 rounding drifts past the bound with depth, yet every
layer is OK in isolation, and the float64 re-run shows the drift is rounding."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import tf2torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from test_applications import build_application  # the zoo's realistic random ResNet


@pytest.mark.slow
def test_resnet152_every_layer_isolated_ok(tmp_path):
    model, sample = build_application("ResNet152", 96)
    path = tmp_path / "resnet152.keras"
    model.save(path)
    result = tf2torch.convert(str(path))
    report = result.verify_layers([sample(2, 7)], keras_model=model, fp64=True)
    assert len(report.layers) > 500
    assert report.first_divergence is None, report.table()
    assert "Every layer matches in isolation." in report.summary()
    report.save_html(tmp_path / "verification.html")
    print(report.summary(), f"max cumulative {max(c.cumulative_rel_error for c in report.layers):.2e}",
          f"max isolated {max(c.max_rel_error for c in report.layers):.2e}")
    if report.first_drift is not None:
        assert report.drift_is_rounding, report.table()
