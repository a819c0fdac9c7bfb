"""Keras 3 STFTSpectrogram against TensorFlow's output. Named windows ("hann") need scipy,
which the test environment lacks: window=None (rectangular); the converted module reads the
kernels from the file, so the window does not change the conversion."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import convert_and_compare

CASES = {
    "log-same": ({"window": None, "frame_length": 16, "frame_step": 5, "fft_length": 32, "padding": "same"}, False),
    "magnitude-expand": ({"mode": "magnitude", "frame_length": 12, "frame_step": 4, "expand_dims": True,
                          "window": None, "scaling": "spectrum"}, False),
    "psd": ({"mode": "psd", "window": None, "frame_length": 8, "periodic": True}, False),
    "real": ({"mode": "real", "window": None, "frame_length": 10, "frame_step": 3, "scaling": None}, False),
    "imag-channels-first": ({"mode": "imag", "window": None, "frame_length": 10, "frame_step": 7, "data_format": "channels_first"}, True),
    "stft-channels-first-expand": ({"mode": "stft", "window": None, "frame_length": 9, "expand_dims": True,
                                    "data_format": "channels_first"}, True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_stft_spectrogram(keras, tmp_path, case):
    kwargs, channels_first = CASES[case]
    shape = (2, 101) if channels_first else (101, 2)
    inp = keras.Input(shape)
    model = keras.Model(inp, keras.layers.STFTSpectrogram(**kwargs)(inp))
    x = np.random.default_rng(0).standard_normal((3,) + shape).astype(np.float32)
    convert_and_compare(model, tmp_path, inputs=[x], perturb=False)  # the kernels are the DFT's


def test_stft_spectrogram_then_conv2d(keras, tmp_path):
    inp = keras.Input((64, 1))
    x = keras.layers.STFTSpectrogram(window=None, frame_length=16, frame_step=8, expand_dims=True, trainable=False)(inp)
    model = keras.Model(inp, keras.layers.Conv2D(3, 3)(x))
    x = np.random.default_rng(1).standard_normal((2, 64, 1)).astype(np.float32)
    convert_and_compare(model, tmp_path, inputs=[x])


MEL_CASES = {
    "default-db": {"fft_length": 64, "sequence_stride": 16, "num_mel_bins": 12, "sampling_rate": 8000},
    "short-window-hamming": {"fft_length": 64, "sequence_length": 40, "sequence_stride": 24, "window": "hamming",
                             "num_mel_bins": 10, "min_freq": 100.0, "max_freq": 3000.0, "sampling_rate": 8000,
                             "top_db": 30.0, "ref_power": 2.0},
    "magnitude-no-db": {"fft_length": 32, "sequence_stride": 9, "num_mel_bins": 8, "power_to_db": False,
                        "mag_exp": 1.0, "window": None, "sequence_length": 20},
}


@pytest.mark.parametrize("case", list(MEL_CASES))
def test_mel_spectrogram(keras, tmp_path, case):
    inp = keras.Input((301,))
    model = keras.Model(inp, keras.layers.MelSpectrogram(**MEL_CASES[case])(inp))
    x = np.random.default_rng(0).standard_normal((3, 301)).astype(np.float32)
    convert_and_compare(model, tmp_path, inputs=[x], perturb=False)
