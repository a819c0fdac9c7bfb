"""Stand-in for torchvision, used by the benchmark only (see bench/README.md).

onnx2torch imports `torchvision.ops` at import time for its NonMaxSuppression and RoiAlign
converters. No CPU build of torchvision matching torch 2.13.0 is installable here (pip would
pull a CUDA torch), and none of the benchmarked models uses those two ops, so this package
provides just the names onnx2torch imports; calling any of them raises.
"""

from torchvision import ops

__all__ = ["ops"]
__version__ = "0.0.0+bench-stub"
