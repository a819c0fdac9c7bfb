"""Reading a .keras / .h5 file as untrusted input: weights checked against their layer,
archive members and HDF5 objects that would read elsewhere refused, limits with their
options, and the messages that say where the problem is. (tests/robustness/ runs the command
line on hundreds of generated cases; these pin the individual rules.)"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import tf2torch
from tf2torch.errors import BadModelFile
from tf2torch.frontends.keras.zip_check import check_members
from tf2torch.limits import Limits

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "small_cnn.keras"


def _rewrite(source: Path, target: Path, *, config=None, weights_edit=None, extra=()) -> Path:
    """A copy of the archive with its config replaced and/or its weights edited in h5py."""
    with zipfile.ZipFile(source) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(target, "w") as archive:
        for info, data in members:
            if info.filename == "config.json" and config is not None:
                data = json.dumps(config).encode()
            if info.filename == "model.weights.h5" and weights_edit is not None:
                buffer = io.BytesIO(data)
                with h5py.File(buffer, "r+") as h5:
                    weights_edit(h5)
                data = buffer.getvalue()
            archive.writestr(info, data)
        for info, data in extra:
            archive.writestr(info, data)
    return target


def _config() -> dict:
    with zipfile.ZipFile(EXAMPLE) as archive:
        return json.loads(archive.read("config.json"))


def _set(path: str, value: np.ndarray):
    def edit(h5):
        del h5[path]
        h5[path] = value

    return edit


def test_kernel_of_the_wrong_shape_names_the_layer_and_both_shapes(tmp_path):
    path = _rewrite(EXAMPLE, tmp_path / "m.keras", weights_edit=_set("layers/dense/vars/0", np.ones((385, 32), np.float32)))
    with pytest.raises(BadModelFile, match=r"layer 'hidden' \(Dense\): weight #0 has shape \(385, 32\), its config implies \(384, 32\)"):
        tf2torch.convert(path)


def test_missing_bias_is_a_count_mismatch(tmp_path):
    def drop_bias(h5):
        del h5["layers/conv2d_1/vars/1"]

    path = _rewrite(EXAMPLE, tmp_path / "m.keras", weights_edit=drop_bias)
    with pytest.raises(BadModelFile, match=r"'conv2' \(Conv2D\): the file holds 1 weights .*implies 2"):
        tf2torch.convert(path)


def test_integer_kernel_is_refused(tmp_path):
    path = _rewrite(EXAMPLE, tmp_path / "m.keras", weights_edit=_set("layers/dense_1/vars/0", np.ones((32, 10), np.int32)))
    with pytest.raises(BadModelFile, match=r"'logits'.*stored as int32"):
        tf2torch.convert(path)


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_other_float_widths_convert_to_float32_with_a_warning(dtype, tmp_path):
    reference = tf2torch.convert(EXAMPLE)
    kernel = reference.state_dict  # NCHW kernels: compare through the original HWIO array
    with zipfile.ZipFile(EXAMPLE) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as h5:
        original = np.asarray(h5["layers/conv2d/vars/0"])
    narrowed = original.astype(dtype)
    path = _rewrite(EXAMPLE, tmp_path / "m.keras", weights_edit=_set("layers/conv2d/vars/0", narrowed))
    with pytest.warns(UserWarning, match=f"'conv1' .*stored as {dtype}; converted to float32"):
        result = tf2torch.convert(path)
    name = next(k for k in result.state_dict if k.startswith("conv1") and k.endswith("weight"))
    expected = narrowed.astype(np.float32).transpose(3, 2, 0, 1)
    np.testing.assert_array_equal(result.state_dict[name], expected)
    assert result.state_dict[name].dtype == np.float32
    assert set(result.state_dict) == set(kernel)


def test_nan_weights_convert_with_a_warning(tmp_path):
    with zipfile.ZipFile(EXAMPLE) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as h5:
        bias = np.asarray(h5["layers/dense/vars/1"])
    bias[3] = np.nan
    path = _rewrite(EXAMPLE, tmp_path / "m.keras", weights_edit=_set("layers/dense/vars/1", bias))
    with pytest.warns(UserWarning, match="'hidden' .*NaN or infinite"):
        result = tf2torch.convert(path)
    assert np.isnan(result.state_dict["hidden.bias"][3])


@pytest.mark.parametrize("name, problem", [
    ("../evil.py", "outside the archive"),
    ("/etc/evil", "absolute path"),
    ("config.json", "appears twice"),
])
def test_hostile_member_names_are_refused(name, problem, tmp_path):
    path = _rewrite(EXAMPLE, tmp_path / "m.keras", extra=[(zipfile.ZipInfo(name), b"{}")])
    with pytest.raises(BadModelFile, match=problem), zipfile.ZipFile(path) as archive:
        check_members(archive, str(path))


def test_symlink_member_is_refused(tmp_path):
    info = zipfile.ZipInfo("assets/link")
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    path = _rewrite(EXAMPLE, tmp_path / "m.keras", extra=[(info, b"/etc/passwd")])
    with pytest.raises(BadModelFile, match="'assets/link' is a symlink"):
        tf2torch.convert(path)


@pytest.mark.parametrize("link", ["soft", "external"])
def test_hdf5_links_are_refused(link, tmp_path):
    def edit(h5):
        del h5["layers/dense/vars/1"]
        h5["layers/dense/vars/1"] = (h5py.SoftLink("/layers/dense_1/vars/1") if link == "soft"
                                     else h5py.ExternalLink(str(tmp_path / "other.h5"), "/x"))

    path = _rewrite(EXAMPLE, tmp_path / "m.keras", weights_edit=edit)
    with pytest.raises(BadModelFile, match=f"/layers/dense/vars/1 is an? {link} link"):
        tf2torch.convert(path)


def test_external_storage_is_refused_before_any_read(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.ones(32, np.float32).tobytes())

    def edit(h5):
        del h5["layers/dense/vars/1"]
        h5.create_dataset("layers/dense/vars/1", shape=(32,), dtype="float32", external=[(str(outside), 0, 128)])

    path = _rewrite(EXAMPLE, tmp_path / "m.keras", weights_edit=edit)
    with pytest.raises(BadModelFile, match="keeps its data in an external file"):
        tf2torch.convert(path)


def test_truncated_archive_is_called_truncated(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(EXAMPLE.read_bytes()[:5000])
    with pytest.raises(BadModelFile, match="truncated"):
        tf2torch.convert(path)


def test_empty_file_and_fifo(tmp_path):
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    with pytest.raises(BadModelFile, match="the file is empty"):
        tf2torch.convert(empty)
    fifo = tmp_path / "pipe.keras"
    os.mkfifo(fifo)  # opening it would block: the type is checked first
    with pytest.raises(BadModelFile, match="is a FIFO"):
        tf2torch.convert(fifo)


def test_layer_limit_and_its_option(tmp_path):
    path = shutil.copy(EXAMPLE, tmp_path / "m.keras")
    with pytest.raises(BadModelFile, match="more than 5 layers .*--max-layers"):
        tf2torch.convert(path, limits=Limits(max_layers=5))
    assert tf2torch.convert(path, limits=Limits(max_layers=12)).state_dict


def test_weight_limit_and_its_option(tmp_path):
    path = shutil.copy(EXAMPLE, tmp_path / "m.keras")
    with pytest.raises(BadModelFile, match="--max-weight-bytes"):
        tf2torch.convert(path, limits=Limits(max_weight_bytes=10_000))


def test_declared_input_too_large_is_refused_before_allocation(tmp_path):
    config = _config()
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 10**9, 10**9, 3]
    path = _rewrite(EXAMPLE, tmp_path / "m.keras", config=config)
    with pytest.raises(BadModelFile, match=r"layer 'image' \(InputLayer\): config key 'batch_shape' declares a sample"):
        tf2torch.convert(path)


def test_impossible_config_values_name_the_key(tmp_path):
    config = _config()
    conv = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Conv2D")
    conv["config"]["strides"] = [0, 2]
    path = _rewrite(EXAMPLE, tmp_path / "m.keras", config=config)
    with pytest.raises(BadModelFile, match=r"layer 'conv1' \(Conv2D\): config key 'strides' must be a positive integer"):
        tf2torch.convert(path)


def test_a_cycle_in_the_layer_graph_is_named(tmp_path):
    config = _config()
    layers = config["config"]["layers"]
    conv = next(layer for layer in layers if layer["name"] == "conv1")
    conv["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["relu1", 0, 0]
    path = _rewrite(EXAMPLE, tmp_path / "m.keras", config=config)
    with pytest.raises(BadModelFile, match=r"cycle \(bn1 -> conv1 -> relu1 -> bn1, each taking"):
        tf2torch.convert(path)


def test_no_temp_file_left_after_a_failure(tmp_path, monkeypatch):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr("tempfile.tempdir", None)
    path = _rewrite(EXAMPLE, tmp_path / "m.keras", weights_edit=_set("layers/dense/vars/0", np.ones((3, 3), np.float32)))
    with pytest.raises(BadModelFile):
        tf2torch.convert(path)
    assert list(temp.iterdir()) == []


def test_ctrl_c_during_conversion_leaves_no_temp_file(tmp_path, monkeypatch):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr("tempfile.tempdir", None)

    def interrupted(*_args, **_kwargs):
        assert list(temp.iterdir()), "the weights are extracted to a temp file during the conversion"
        raise KeyboardInterrupt

    monkeypatch.setattr("tf2torch.api._convert_source", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tf2torch.convert(EXAMPLE)
    assert list(temp.iterdir()) == []


def test_config_checks_accept_keys_that_mean_something_else_in_other_layers():
    from tf2torch.frontends.keras.config_check import check_model_config

    def model(*layers):
        return {"class_name": "Sequential", "config": {"name": "m", "layers": [
            {"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [None, 4]}}, *layers]}}

    rescaling = {"class_name": "Rescaling", "config": {"name": "r", "scale": 0.0039, "offset": -1.0}}
    normalization = {"class_name": "Normalization", "config": {"name": "n", "axis": None, "mean": [1, 2]}}
    check_model_config(model(rescaling, normalization), "m.h5", Limits())
    bad_norm = {"class_name": "BatchNormalization", "config": {"name": "b", "scale": 0.5}}
    with pytest.raises(BadModelFile, match="'scale' must be true or false"):
        check_model_config(model(bad_norm), "m.h5", Limits())
