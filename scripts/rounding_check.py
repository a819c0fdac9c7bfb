"""Per-sample fp32 rounding of the models over the fidelity bound (issue 6), on many inputs.

docs/zoo.md measures one batch of 2 images. A single maximum is a noisy statistic of fp32
rounding, so this script draws N images (default 16), and for each image reports, relative to
that image's max |logit| of TensorFlow fp32:

- tf2torch fp32 vs TensorFlow fp32;
- Keras 3 on the torch backend (same .keras, fresh process) vs TensorFlow fp32;
- the converted module in float64 vs TensorFlow fp32 (the issue's test);
- TensorFlow fp32 vs the exact result (the Keras model rebuilt in float64, same weights).

It prints the median and the maximum over the images of each column.

    python scripts/rounding_check.py [--size 96] [--images 16] MODEL [MODEL ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts")]
from zoo import THREADS, keras_torch_logits  # the same Keras-on-torch runner as make zoo


def per_image(a, b, scale):
    import numpy as np

    return np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max(axis=1) / scale


def check(name: str, size: int, images: int, work: Path) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import numpy as np
    import torch

    torch.set_num_threads(THREADS)
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]
    from test_applications import build_application, exact_logits

    import tf2torch

    model, sample = build_application(name, size)
    x = sample(images, 7)
    reference = np.asarray(model(x, training=False))
    scale = np.abs(reference).max(axis=1)
    path = work / f"{name}.keras"
    model.save(str(path))
    module = tf2torch.convert(str(path)).module.eval()
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        ours = module(xt).numpy()
        ours64 = module.double()(xt.double()).numpy()
    keras_torch = keras_torch_logits(x, path, work)
    exact = exact_logits(name, size, model, x)
    return {
        "tf2torch fp32 vs TF": per_image(ours, reference, scale),
        "Keras-3-torch vs TF": per_image(keras_torch, reference, scale),
        "fp64 module vs TF": per_image(ours64, reference, scale),
        "TF fp32 vs exact": per_image(reference, exact, scale),
        "tf2torch fp32 vs exact": per_image(ours, exact, scale),
    }


def main() -> int:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()
    for name in args.models:
        with tempfile.TemporaryDirectory(prefix="rounding-") as tmp:
            columns = check(name, args.size, args.images, Path(tmp))
        ours, theirs = columns["tf2torch fp32 vs TF"], columns["Keras-3-torch vs TF"]
        print(f"\n## {name} ({args.size}x{args.size}, {args.images} images; error / max|logit| per image)\n")
        print(f"| {'column':<24} | median | max | images over 1e-4 |")
        print("|---|---:|---:|---:|")
        for label, values in columns.items():
            print(f"| {label:<24} | {np.median(values):.2e} | {values.max():.2e} | {(values > 1e-4).sum()} |")
        print(f"\ntf2torch below Keras-3-torch on {(ours <= theirs).sum()} of {len(ours)} images; "
              f"median ratio tf2torch / Keras-3-torch {np.median(ours / theirs):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
