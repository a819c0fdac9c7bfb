"""model.safetensors, byte for byte the same for the same weights.

The safetensors library writes its `__metadata__` keys in hash-map order (different from one
run to the next); this writer sorts the header's keys and lays tensors out by name. The
format is the library's: 8-byte little-endian header length, the JSON header (padded with
spaces to 8 bytes), then the tensors' little-endian bytes.
"""

from __future__ import annotations

import json
import struct

import numpy as np

DTYPES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
    "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
    "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL",
}


def safetensors_bytes(arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    blobs = []
    offset = 0
    for name in sorted(arrays):
        array = np.asarray(arrays[name])
        if array.dtype.name not in DTYPES:
            raise TypeError(f"safetensors has no data type for {name!r} ({array.dtype})")
        # A view of the array's bytes (copied once, by the final join).
        data = memoryview(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).reshape(-1)).cast("B")
        header[name] = {"dtype": DTYPES[array.dtype.name], "shape": list(array.shape),
                        "data_offsets": [offset, offset + data.nbytes]}
        blobs.append(data)
        offset += data.nbytes
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return b"".join([struct.pack("<Q", len(text)), text, *blobs])
