"""An HDF5 file is checked whole before any weight is read from it.

HDF5 can make a "dataset" read another file: external links (`ExternalLink`), external raw
storage (`dataset.external`), virtual datasets (a mapping onto other files). Keras writes
none of these, nor soft links, so all are refused; reading stays inside the file. Declared
dataset sizes are checked against the bytes actually stored (chunk bombs), and filters are
limited to HDF5's built-in ones (an unknown filter id makes HDF5 load a plugin library).
"""

from __future__ import annotations

import h5py

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
    def check_link(name: str, link: object) -> None:
        if isinstance(link, h5py.HardLink):
            return
        if isinstance(link, h5py.ExternalLink):
            raise BadModelFile(
                f"{where}: /{name} is an external link to {link.filename}:{link.path}; "
                "a model file must not read other files, so it is refused"
            )
        if isinstance(link, h5py.SoftLink):
            raise BadModelFile(f"{where}: /{name} is a soft link (to {link.path}); Keras never writes links, so it is refused")
        raise BadModelFile(f"{where}: /{name} is a user-defined HDF5 link; refused")

    total = 0

    def check_object(name: str, obj: object) -> None:
        nonlocal total
        if not isinstance(obj, h5py.Dataset):
            return
        label = f"{where}: dataset /{name}"
        if obj.is_virtual:
            raise BadModelFile(f"{label} is a virtual dataset (its data lives in other files); refused")
        if obj.external:
            raise BadModelFile(f"{label} keeps its data in an external file ({obj.external[0][0]!r}); refused")
        plist = obj.id.get_create_plist()
        for i in range(plist.get_nfilters()):
            code = plist.get_filter(i)[0]
            if code not in BUILTIN_FILTERS:
                raise BadModelFile(f"{label} uses HDF5 filter {code}, which is not built in; refused (it would load a plugin)")
        if obj.dtype.kind not in "biufcSU" and h5py.check_string_dtype(obj.dtype) is None:
            raise BadModelFile(f"{label} has an unsupported data type ({obj.dtype}); weights are numeric arrays")
        declared = int(obj.size) * obj.dtype.itemsize
        total += declared
        if declared > limits.ratio_free_bytes:
            stored = obj.id.get_storage_size()
            if declared > limits.max_compression_ratio * max(stored, 1):
                raise BadModelFile(
                    f"{label} declares {size_text(declared)} (shape {obj.shape}) but stores {size_text(stored)}; refused"
                )

    try:
        h5.visititems_links(check_link)
        h5.visititems(check_object)
    except BadModelFile:
        raise
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise BadModelFile(f"{where}: {hdf5_problem(exc)}") from None
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
