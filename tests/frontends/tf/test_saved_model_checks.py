"""A SavedModel directory is checked before TensorFlow reads it: no special files, no symlink
leading outside it, saved_model.pb present and non-empty."""

from __future__ import annotations

import os

import pytest

from tf2torch.errors import BadModelFile
from tf2torch.frontends.tf.loader import check_saved_model_dir


@pytest.fixture
def saved_model(tmp_path):
    root = tmp_path / "model"
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"\x08\x01")
    (root / "variables" / "variables.index").write_bytes(b"index")
    return root


def test_a_plain_directory_passes(saved_model):
    check_saved_model_dir(str(saved_model))


def test_symlink_leading_outside_is_refused(saved_model, tmp_path):
    outside = tmp_path / "elsewhere.data"
    outside.write_bytes(b"secret")
    (saved_model / "variables" / "variables.data-00000-of-00001").symlink_to(outside)
    with pytest.raises(BadModelFile, match="is a symlink to .*elsewhere.data, outside the SavedModel directory"):
        check_saved_model_dir(str(saved_model))


def test_symlink_inside_is_allowed(saved_model):
    (saved_model / "variables" / "alias.index").symlink_to(saved_model / "variables" / "variables.index")
    check_saved_model_dir(str(saved_model))


def test_fifo_inside_is_refused_without_opening_it(saved_model):
    os.mkfifo(saved_model / "variables" / "variables.data-00000-of-00001")
    with pytest.raises(BadModelFile, match="variables.data-00000-of-00001 is a FIFO"):
        check_saved_model_dir(str(saved_model))


@pytest.mark.parametrize("problem", ["missing", "empty"])
def test_saved_model_pb_missing_or_empty(saved_model, problem):
    if problem == "missing":
        (saved_model / "saved_model.pb").unlink()
        match = "no saved_model.pb"
    else:
        (saved_model / "saved_model.pb").write_bytes(b"")
        match = "the file is empty"
    with pytest.raises(BadModelFile, match=match):
        check_saved_model_dir(str(saved_model))
