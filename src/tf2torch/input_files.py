"""What a model path points at, decided from its file type before anything opens it.

A FIFO blocks whoever opens it, a device can stream forever, a socket cannot be read: none
of them is a model. `os.stat` looks at the file (through a symlink) without opening it.
"""

from __future__ import annotations

import os
import stat

from tf2torch.errors import BadModelFile

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def file_kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def check_model_path(path: str, *, directory_ok: bool = False) -> os.stat_result:
    """The stat of `path` if it is a non-empty regular file (or, with `directory_ok`, a
    directory); BadModelFile otherwise. Never opens the file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        dangling = os.path.islink(path)
        raise BadModelFile(f"{path}: {'a symlink to a missing file' if dangling else 'no such file'}") from None
    except OSError as exc:
        raise BadModelFile(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        if directory_ok:
            return info
        raise BadModelFile(f"{path}: is a directory; pass a .keras or .h5 file (a SavedModel directory "
                           "goes to the TF frontend)")
    if not stat.S_ISREG(info.st_mode):
        raise BadModelFile(f"{path}: is {file_kind(info.st_mode)}, not a model file; it was not opened")
    if info.st_size == 0:
        raise BadModelFile(f"{path}: the file is empty")
    if not os.access(path, os.R_OK):
        raise BadModelFile(f"{path}: the file is not readable (permission denied)")
    return info


def open_regular(path: str) -> int:
    """Open `path` for reading without blocking on a FIFO swapped in after the check, and
    confirm (on the open descriptor) that it is a regular file. Returns the descriptor."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise BadModelFile(f"{path}: is {file_kind(info.st_mode)}, not a model file")
    os.set_blocking(fd, True)
    return fd
