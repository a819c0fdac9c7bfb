"""Complex tensors and Fourier transforms (frontends/tf/ops/fft.py) against TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import tf2torch

CASES = {
    # FNet's token mixing: the real part of a 2-D FFT over (sequence, features)
    "fft2_real": ((None, 7, 6), lambda x: tf.math.real(tf.signal.fft2d(tf.cast(x, tf.complex64)))),
    "fft_imag": ((None, 5, 9), lambda x: tf.math.imag(tf.signal.fft(tf.complex(x, x * 0.5)))),
    "ifft3d_abs": ((None, 3, 4, 5), lambda x: tf.abs(tf.signal.ifft3d(tf.complex(x, tf.sin(x))))),
    "rfft_cropped_angle": ((None, 4, 11), lambda x: tf.math.angle(tf.signal.rfft(x, fft_length=[8]))),
    "rfft_padded_abs": ((None, 9), lambda x: tf.abs(tf.signal.rfft(x, fft_length=[12]))),
    "rfft2d_irfft2d": ((None, 6, 7), lambda x: tf.signal.irfft2d(tf.signal.rfft2d(x) * 2.0, fft_length=[6, 7])),
    "complex_scale": ((None, 6), lambda x: tf.math.imag(tf.signal.fft(tf.cast(x, tf.complex64)) * tf.complex(2.0, -1.0))),
    "irfft_odd": ((None, 3, 7), lambda x: tf.signal.irfft(tf.complex(x, -x), fft_length=[13])),
    "cast_back": ((None, 5), lambda x: tf.cast(tf.signal.fft(tf.cast(x, tf.complex64)), tf.float32)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fft_matches_tensorflow(name):
    shape, body = CASES[name]
    fn = tf.function(body, input_signature=[tf.TensorSpec(shape, tf.float32)])
    result = tf2torch.convert(fn)
    for batch in (3, 2):
        inputs = [np.random.default_rng(batch).standard_normal((batch,) + shape[1:]).astype(np.float32)]
        report = result.verify(inputs, tolerance=1e-5)
        assert report.outputs and report.ok, report.table()
    assert "torch.fft." in result.source_code
