"""`tf2torch inspect` / `convert` on TF graphs (SavedModel directories, frozen .pb files)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tf2torch.cli import main


class Odd(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(np.ones((4, 4), np.float32), name="w")

    @tf.function(input_signature=[tf.TensorSpec((None, 4, 4), tf.float32)])
    def __call__(self, x):
        y = tf.sin(tf.matmul(x, self.w)) + tf.sin(x)
        return tf.math.digamma(y)[:, 0, 0] + tf.math.lgamma(tf.reduce_sum(tf.abs(y), axis=[1, 2]) + 1.0)


def test_inspect_lists_op_types_with_counts_and_support(tmp_path, capsys):
    tf.saved_model.save(Odd(), str(tmp_path / "odd"))
    assert main(["inspect", str(tmp_path / "odd")]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[3:-1]}
    assert lines["Sin"] == ["2", "yes"]
    assert lines["Digamma"] == ["1", "NO"]
    assert lines["Lgamma"] == ["1", "NO"]
    assert "2 unsupported: Digamma, Lgamma" in out


def test_convert_saved_model_from_the_command_line(tmp_path, capsys):
    class Small(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32), name="head/w")

        @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32)])
        def __call__(self, x):
            return tf.nn.sigmoid(tf.matmul(x, self.w))

    tf.saved_model.save(Small(), str(tmp_path / "small"))
    status = main(["convert", str(tmp_path / "small"), "-o", str(tmp_path / "out"), "--verify", "--batch-size", "3"])
    assert status == 0, capsys.readouterr()
    assert (tmp_path / "out" / "model.py").is_file()
    assert "Result: OK" in capsys.readouterr().out


def test_unsupported_ops_make_convert_fail_with_every_op(tmp_path, capsys):
    tf.saved_model.save(Odd(), str(tmp_path / "odd"))
    assert main(["convert", str(tmp_path / "odd"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Digamma" in err and "Lgamma" in err


def test_verify_frozen_graph_from_the_command_line(tmp_path, capsys):
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    w = tf.Variable(np.random.default_rng(1).standard_normal((5, 2)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec((None, 5), tf.float32, name="x")])
    def net(x):
        return tf.nn.softplus(tf.matmul(x, w), name="y")

    path = tmp_path / "g.pb"
    path.write_bytes(convert_variables_to_constants_v2(net.get_concrete_function()).graph.as_graph_def().SerializeToString())
    assert main(["verify", str(path), "--input-names", "x", "--output-names", "y", "--batch-size", "3"]) == 0
    assert "Result: OK" in capsys.readouterr().out
