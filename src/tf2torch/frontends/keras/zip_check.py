"""A .keras archive's members are not trusted: their names, types and declared sizes.

Refused: absolute names, names with a `..` component, symlink members and duplicated names
(a second config.json would be read by one tool and not by another). Sizes are counted as
the member is decompressed, never taken from its header.
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from tf2torch.errors import BadModelFile
from tf2torch.limits import Limits, size_text

_SEPARATORS = re.compile(r"[\\/]")


def check_members(archive: zipfile.ZipFile, path: str) -> set[str]:
    """The member names, once every member has passed the name and type checks."""
    seen: set[str] = set()
    for info in archive.infolist():
        name = info.filename
        where = f"{path}: archive member {name!r}"
        if name in seen:
            raise BadModelFile(f"{where} appears twice; a .keras archive has each member once")
        seen.add(name)
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            raise BadModelFile(f"{where} has an absolute path; refused")
        if ".." in _SEPARATORS.split(name):
            raise BadModelFile(f"{where} points outside the archive ('..'); refused")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise BadModelFile(f"{where} is a symlink; refused")
    return seen


def check_member_size(info: zipfile.ZipInfo, size: int, path: str, limits: Limits) -> None:
    """`size` bytes of the member (declared, or decompressed so far) are within the limits."""
    if size > limits.max_weight_bytes:
        raise BadModelFile(
            f"{path}: archive member {info.filename} expands to more than {size_text(limits.max_weight_bytes)} "
            "(raise the limit with --max-weight-bytes)"
        )
    if size > limits.ratio_free_bytes and size > limits.max_compression_ratio * max(info.compress_size, 1):
        raise BadModelFile(
            f"{path}: archive member {info.filename} expands more than {limits.max_compression_ratio}x "
            f"({size_text(info.compress_size)} compressed); refused as a zip bomb"
        )


@contextmanager
def member_errors(path: str, name: str) -> Iterator[None]:
    """Reading a damaged member: the zip module's exceptions in the user's terms."""
    try:
        yield
    except zipfile.BadZipFile as exc:
        reason = "CRC mismatch" if "CRC" in str(exc) else "its header does not match the archive directory"
        raise BadModelFile(f"{path}: the archive member {name} is damaged ({reason})") from None
    except (zlib.error, EOFError, OSError) as exc:
        problem = "its compressed data is invalid" if isinstance(exc, zlib.error) else "the archive is truncated or spliced"
        raise BadModelFile(f"{path}: the archive member {name} is damaged ({problem})") from None
    except NotImplementedError as exc:
        raise BadModelFile(f"{path}: the archive member {name} uses an unsupported compression ({exc})") from None
    except RuntimeError as exc:  # encrypted members
        raise BadModelFile(f"{path}: the archive member {name} cannot be read ({exc})") from None
