"""README.md's supported-layer table must match the registry."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import tf2torch

REPO = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_supported_table", REPO / "scripts" / "gen_supported_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_supported_layers_is_sorted_and_has_no_input_layer():
    names = tf2torch.supported_layers()
    assert names == sorted(names)
    assert "InputLayer" not in names
    assert {"Conv2D", "Dense", "BatchNormalization"} <= set(names)


def test_readme_supported_layer_table_is_current():
    pytest.importorskip("keras")
    pytest.importorskip("tf_keras")
    gen = _generator()
    readme = (REPO / "README.md").read_text()
    assert gen.between_markers(readme) == gen.render_table(), (
        "README.md's supported-layer table is stale: run `python scripts/gen_supported_table.py`"
    )


def test_every_supported_layer_is_in_readme():
    gen = _generator()
    table = gen.between_markers((REPO / "README.md").read_text())
    for name in tf2torch.supported_layers():
        assert f"`{name}`" in table


def test_every_public_keras_layer_class_has_a_status():
    pytest.importorskip("keras")
    pytest.importorskip("tf_keras")
    gen = _generator()
    import tf2torch.frontends.keras.importer  # noqa: F401  (fills the registry)

    for label, _, classes in gen.builtin_sources():
        assert len(classes) > 100, label  # the listing found the real layer modules
        missing = sorted(name for name, own in classes.items() if gen.layer_status(own) is None)
        assert not missing, f"{label} classes with no status: {missing}"


def test_refused_and_converted_builtins_do_not_overlap():
    from tf2torch.frontends.keras.builtin_layers import CONVERTED_INSIDE, REFUSED_BUILTINS
    from tf2torch.frontends.keras.registry import LAYER_IMPORTERS

    assert not set(REFUSED_BUILTINS) & set(LAYER_IMPORTERS)
    assert not set(CONVERTED_INSIDE) & set(LAYER_IMPORTERS)
