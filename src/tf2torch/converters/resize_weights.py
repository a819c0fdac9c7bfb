"""TensorFlow's image resize (tf.image.resize, TF 2 semantics) along one axis, as a matrix.

Every method tf.image.resize offers is separable: the output is `rows @ image @ cols.T` with
one (out_size, in_size) matrix per spatial axis. The matrices are computed here with the
arithmetic of TensorFlow's kernels (float32 sample positions, their clamping at the borders
and their weight normalisation), so the converted model computes TF's resize rather than
torch's `F.interpolate`, which differs for bicubic (a = -0.75, edge pixels repeated), area
(integer bins) and antialiasing.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

f32 = np.float32

# Kernels of TF's ScaleAndTranslate op (sampling_kernels.h): (function of |x|, radius).
Kernel = tuple[Callable[[float], float], float]


def _lanczos(radius: float) -> Kernel:
    def weight(x: float) -> float:
        if x > radius:
            return 0.0
        if x <= 1e-3:
            return 1.0
        pi_x = math.pi * x
        return radius * math.sin(pi_x) * math.sin(pi_x / radius) / (pi_x * pi_x)

    return weight, radius


def _gaussian(x: float, radius: float = 1.5) -> float:
    sigma = radius / 3.0
    return 0.0 if x >= radius else math.exp(-x * x / (2.0 * sigma * sigma))


def _triangle(x: float) -> float:
    return 1.0 - x if x < 1.0 else 0.0


def _keys_cubic(x: float) -> float:
    if x >= 2.0:
        return 0.0
    if x >= 1.0:
        return ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
    return (1.5 * x - 2.5) * x * x + 1.0


def _mitchell_cubic(x: float) -> float:
    if x >= 2.0:
        return 0.0
    if x >= 1.0:
        return (((-7.0 / 18.0) * x + 2.0) * x - 10.0 / 3.0) * x + 16.0 / 9.0
    return ((7.0 / 6.0) * x - 2.0) * x * x + 8.0 / 9.0


SCALE_AND_TRANSLATE_KERNELS: dict[str, Kernel] = {
    "lanczos3": _lanczos(3.0),
    "lanczos5": _lanczos(5.0),
    "gaussian": (_gaussian, 1.5),
    "mitchellcubic": (_mitchell_cubic, 2.0),
    "bilinear": (_triangle, 1.0),  # with antialias
    "bicubic": (_keys_cubic, 2.0),  # with antialias
}


def resize_matrix(method: str, antialias: bool, in_size: int, out_size: int) -> np.ndarray:
    """The (out_size, in_size) float32 matrix of tf.image.resize(method, antialias) on one axis."""
    if method == "nearest":
        return _nearest(in_size, out_size)
    if method == "area":
        return _area(in_size, out_size)
    if method == "bilinear" and not antialias:
        return _bilinear(in_size, out_size)
    if method == "bicubic" and not antialias:
        return _bicubic(in_size, out_size)
    weight, radius = SCALE_AND_TRANSLATE_KERNELS[method]
    return _scale_and_translate(weight, radius, antialias, in_size, out_size)


def _nearest(in_size: int, out_size: int) -> np.ndarray:
    """ResizeNearestNeighbor, half-pixel centers: floor((x + 0.5) * scale), clamped."""
    scale = f32(in_size) / f32(out_size)
    matrix = np.zeros((out_size, in_size), np.float32)
    for x in range(out_size):
        source = min(max(math.floor(f32(f32(x) + f32(0.5)) * scale), 0), in_size - 1)
        matrix[x, source] = 1.0
    return matrix


def _bilinear(in_size: int, out_size: int) -> np.ndarray:
    """ResizeBilinear, half-pixel centers."""
    scale = f32(in_size) / f32(out_size)
    matrix = np.zeros((out_size, in_size), np.float32)
    for x in range(out_size):
        position = f32(f32(f32(x) + f32(0.5)) * scale) - f32(0.5)
        low = math.floor(position)
        lerp = f32(position - f32(low))
        matrix[x, max(low, 0)] += f32(1.0) - lerp
        matrix[x, min(math.ceil(position), in_size - 1)] += lerp
    return matrix


def _bicubic(in_size: int, out_size: int) -> np.ndarray:
    """ResizeBicubic, half-pixel centers: Keys' cubic (a = -0.5) read from TF's 1024-entry
    coefficient table; taps outside the image get weight 0 and the rest is renormalised."""
    table_size = 1024
    a = -0.5

    def near(t: float) -> float:  # |distance| in [0, 1]
        return f32(((a + 2) * t - (a + 3)) * t * t + 1)

    def far(t: float) -> float:  # |distance| in [1, 2]
        t += 1.0
        return f32(((a * t - 5 * a) * t + 8 * a) * t - 4 * a)

    scale = f32(in_size) / f32(out_size)
    matrix = np.zeros((out_size, in_size), np.float32)
    for x in range(out_size):
        position = f32(f32(f32(x) + f32(0.5)) * scale) - f32(0.5)
        base = math.floor(position)
        offset = int(np.rint(f32(f32(position - f32(base)) * f32(table_size))))
        taps = [
            (base - 1, far(offset / table_size)),
            (base, near(offset / table_size)),
            (base + 1, near((table_size - offset) / table_size)),
            (base + 2, far((table_size - offset) / table_size)),
        ]
        inside = [(i, w) for i, w in taps if 0 <= i < in_size]
        total = f32(sum(f32(w) for _, w in inside))
        for i, w in inside:
            matrix[x, i] += f32(w) * (f32(1.0) / total) if abs(total) >= 1000 * np.finfo(np.float32).tiny else w
    return matrix


def _area(in_size: int, out_size: int) -> np.ndarray:
    """ResizeArea: each output cell averages the input cells it covers, by covered fraction."""
    scale = f32(in_size) / f32(out_size)
    matrix = np.zeros((out_size, in_size), np.float32)
    for x in range(out_size):
        start, end = f32(x) * scale, f32(x + 1) * scale
        for i in range(math.floor(start), math.ceil(end)):
            if i < start:
                covered = scale if i + 1 > end else f32(i + 1) - start
            else:
                covered = f32(end - f32(i)) if i + 1 > end else f32(1.0)
            matrix[x, min(max(i, 0), in_size - 1)] += f32(covered) / scale
    return matrix


def _scale_and_translate(weight: Callable[[float], float], radius: float, antialias: bool,
                         in_size: int, out_size: int) -> np.ndarray:
    """ScaleAndTranslate with scale out/in and no translation; with antialias the kernel is
    stretched by in/out when downsampling."""
    inv_scale = f32(1.0) / (f32(out_size) / f32(in_size))
    kernel_scale = max(inv_scale, f32(1.0)) if antialias else f32(1.0)
    reach = f32(radius) * kernel_scale
    matrix = np.zeros((out_size, in_size), np.float32)
    for x in range(out_size):
        sample = f32(f32(x) + f32(0.5)) * inv_scale
        if sample < 0 or sample > in_size:
            continue
        start = min(max(math.ceil(sample - reach - f32(0.5)), 0), in_size - 1)
        end = min(max(math.floor(sample + reach - f32(0.5)), 0), in_size - 1) + 1
        weights = [f32(weight(abs(float(f32(f32(i) + f32(0.5) - sample) * (f32(1.0) / kernel_scale)))))
                   for i in range(start, end)]
        total = f32(sum(weights, f32(0.0)))
        if abs(total) >= 1000 * np.finfo(np.float32).tiny:
            matrix[x, start:end] = np.asarray(weights, np.float32) * (f32(1.0) / total)
    return matrix
