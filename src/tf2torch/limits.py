"""Limits on the work a model file may ask for. Declared sizes are never trusted: each limit
is checked before the work it bounds, and each has a clear message naming the option (or
the constant) that raises it for an honest, very large model."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024**2
GiB = 1024**3


@dataclass(frozen=True)
class Limits:
    # Total bytes of all weights, decompressed (CLI: --max-weight-bytes).
    max_weight_bytes: int = 64 * GiB
    # A JSON document (config.json, metadata.json, an HDF5 model_config attribute).
    max_config_bytes: int = 256 * MiB
    # JSON nesting: Keras configs nest a few dozen levels (model > layers > layer > config > ...).
    max_json_depth: int = 200
    # Layers in the model config, nested models included (CLI: --max-layers).
    max_layers: int = 100_000
    # Elements of one sample of a declared input (batch axis excluded): 2**32 is a 4 GiB
    # float32 sample, far beyond any real input (a 4096 x 4096 RGB image is 5e7).
    max_input_elements: int = 2**32
    # A compressed zip member or HDF5 dataset may expand this much beyond its stored bytes
    # once it is larger than `ratio_free_bytes` (zip and chunk bombs). Keras stores archive
    # members and datasets uncompressed (ratio 1); deflate's own ceiling is ~1030x.
    max_compression_ratio: int = 100
    ratio_free_bytes: int = 16 * MiB


DEFAULT_LIMITS = Limits()


def size_text(n: int) -> str:
    """1536 -> '1.5 KiB': limits in messages, in the units a user thinks in."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
