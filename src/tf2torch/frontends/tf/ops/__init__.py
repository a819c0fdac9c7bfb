"""TF op importers, one module per family. Imported explicitly to fill the registry."""

from tf2torch.frontends.tf.ops import array, control, core, dilation, image, math, nn, random, segments, shapes  # noqa: F401
