"""An HDF5 file is checked whole before any weight is read from it.

HDF5 can make a "dataset" read another file: external links (`ExternalLink`), external raw
storage (`dataset.external`), virtual datasets (a mapping onto other files). Keras writes
none of these, nor soft links, so all are refused; reading stays inside the file. Declared
dataset sizes are checked against the bytes actually stored (chunk bombs), and filters are
limited to HDF5's built-in ones (an unknown filter id makes HDF5 load a plugin library).
"""

from __future__ import annotations

import h5py
import numpy as np

from tf2torch.errors import BadModelFile
from tf2torch.limits import Limits, size_text

# deflate, shuffle, fletcher32, szip, nbit, scaleoffset (HDF5 built-ins) and h5py's lzf.
BUILTIN_FILTERS = {1, 2, 3, 4, 5, 6, 32000}


def open_hdf5(path: str, where: str, limits: Limits) -> h5py.File:
    """Open `path` (described as `where` in messages) and validate all of it."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise BadModelFile(f"{where}: {hdf5_problem(exc)}") from None
    try:
        check_hdf5(h5, where, limits)
    except BaseException:
        h5.close()
        raise
    return h5


def hdf5_problem(exc: BaseException) -> str:
    """h5py's error text, said the way a user reads it."""
    text = str(exc)
    if "truncated" in text or "eof" in text.lower():
        return "the HDF5 file is truncated"
    if "signature" in text:
        return "not an HDF5 file (no HDF5 signature)"
    return f"the HDF5 file is damaged ({text.split('(')[0].strip() or type(exc).__name__})"


def check_hdf5(h5: h5py.File, where: str, limits: Limits) -> None:
    """Every link and every dataset of the file (h5py's low-level API: a big model has
    thousands of objects, and the high-level one builds a Python object per object)."""
    link_kinds = {h5py.h5l.TYPE_SOFT: "a soft link", h5py.h5l.TYPE_EXTERNAL: "an external link"}
    # The visit callbacks must not raise (h5py turns that into a SystemError): they return
    # the problem, which stops the visit, and it is raised afterwards.

    def check_link(name: bytes, info: h5py.h5l.LinkInfo) -> BadModelFile | None:
        if info.type == h5py.h5l.TYPE_HARD:
            return None
        label = f"{where}: /{name.decode(errors='replace')}"
        kind = link_kinds.get(info.type, "a user-defined link")
        return BadModelFile(f"{label} is {kind}; a model file must not point elsewhere (Keras never writes links), "
                            "so it is refused")

    total = 0

    def check_object(name: bytes, info: h5py.h5o.ObjInfo) -> BadModelFile | None:
        if info.type != h5py.h5o.TYPE_DATASET:
            return None
        try:
            check_dataset(name)
        except BadModelFile as problem:
            return problem
        return None

    def check_dataset(name: bytes) -> None:
        nonlocal total
        label = f"{where}: dataset /{name.decode(errors='replace')}"
        dataset = h5py.h5d.open(h5.id, name)
        plist = dataset.get_create_plist()
        if plist.get_layout() == h5py.h5d.VIRTUAL:
            raise BadModelFile(f"{label} is a virtual dataset (its data lives in other files); refused")
        if plist.get_external_count():
            raise BadModelFile(f"{label} keeps its data in an external file ({plist.get_external(0)[0]!r}); refused")
        for i in range(plist.get_nfilters()):
            code = plist.get_filter(i)[0]
            if code not in BUILTIN_FILTERS:
                raise BadModelFile(f"{label} uses HDF5 filter {code}, which is not built in; refused (it would load a plugin)")
        dtype = dataset.dtype
        if dtype.kind not in "biufcSU" and h5py.check_string_dtype(dtype) is None:
            raise BadModelFile(f"{label} has an unsupported data type ({dtype}); weights are numeric arrays")
        shape = dataset.shape
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        total += declared
        if declared > limits.ratio_free_bytes:
            stored = dataset.get_storage_size()
            if declared > limits.max_compression_ratio * max(stored, 1):
                raise BadModelFile(
                    f"{label} declares {size_text(declared)} (shape {shape}) but stores {size_text(stored)}; refused"
                )

    try:
        problem = h5.id.links.visit(check_link, info=True) or h5py.h5o.visit(h5.id, check_object, info=True)
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise BadModelFile(f"{where}: {hdf5_problem(exc)}") from None
    if problem is not None:
        raise problem
    if total > limits.max_weight_bytes:
        raise BadModelFile(
            f"{where}: holds {size_text(total)} of weights, more than the limit of "
            f"{size_text(limits.max_weight_bytes)} (raise it with --max-weight-bytes)"
        )


def read_text_attribute(h5: h5py.File, name: str, where: str, limits: Limits) -> str | None:
    """A string attribute (model_config, training_config, ...), its size checked before it is read."""
    if name not in h5.attrs:
        return None
    try:
        attr = h5.attrs.get_id(name)
        if attr.get_storage_size() > limits.max_config_bytes:
            raise BadModelFile(
                f"{where}: the {name} attribute is larger than {size_text(limits.max_config_bytes)} "
                "(limit: Limits.max_config_bytes in tf2torch.limits)"
            )
        value = h5.attrs[name]
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise BadModelFile(f"{where}: the {name} attribute cannot be read ({hdf5_problem(exc)})") from None
    if isinstance(value, bytes):
        try:
            return value.decode("utf8")
        except UnicodeDecodeError:
            raise BadModelFile(f"{where}: the {name} attribute is not UTF-8 text") from None
    if isinstance(value, str):
        return value
    raise BadModelFile(f"{where}: the {name} attribute is not text (it is {type(value).__name__})")
