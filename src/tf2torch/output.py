"""Atomic output: everything is written to a staging directory first, then moved in.

A conversion owns the files it may write (OUTPUT_FILES). Writing replaces them as one
transaction: the previous ones are moved aside and restored if anything fails, and those
the new conversion does not write (a train.py after converting an uncompiled model) are
removed, so the directory never mixes two conversions. Conversions into the same directory
take turns (an exclusive lock on the directory itself, so no lock file is left behind).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tf2torch.errors import OutputNotWritable

OUTPUT_FILES = (
    "model.py", "model.safetensors", "train.py", "train_utils.py", "optimizer.safetensors", "weights_map.json",
    "verification.json", "verification.html",
)


# A minimal reproduction written by `tf2torch verify --minimize` (verify/minimize.py).
REPRO_FILES = ("layer.keras", "layer.h5", "input.npz", "model.py", "model.safetensors", "reproduce.py")


def write_outputs(directory: Path, files: dict[str, bytes], owned: tuple[str, ...] = OUTPUT_FILES) -> Path:
    """Write all files or none: a failure leaves `directory` as it was. `owned` are the names
    this kind of output may write (and replaces, or removes when not written this time)."""
    unknown = set(files) - set(owned)
    if unknown:
        raise ValueError(f"not an output file: {sorted(unknown)}")
    directory = directory.absolute()
    if directory.exists() and not directory.is_dir():
        raise OutputNotWritable(f"{directory}: the output path exists and is not a directory")
    created = _first_missing(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritable(exc.errno, f"{directory}: the output directory cannot be created ({exc.strerror})") from exc
    try:
        with _exclusive(directory):
            _replace_files(directory, files, owned)
    except BaseException as exc:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputNotWritable):
            raise OutputNotWritable(exc.errno, f"{directory}: the output directory is not writable ({exc.strerror})") from exc
        raise
    return directory.resolve()


def _first_missing(directory: Path) -> Path | None:
    """The outermost directory that mkdir(parents=True) would create (removed on failure)."""
    missing = None
    for path in [directory, *directory.parents]:
        if path.exists():
            break
        missing = path
    return missing


@contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _replace_files(directory: Path, files: dict[str, bytes], owned: tuple[str, ...]) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".tf2torch-staging-", dir=directory))
    backup = staging / "previous"
    backup.mkdir()
    moved: list[str] = []  # previous files, now in backup/
    placed: list[str] = []  # new files, now in the directory
    try:
        for name, data in files.items():
            with open(staging / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        for name in owned:  # the previous conversion's files, written or not this time
            if os.path.lexists(directory / name):
                os.replace(directory / name, backup / name)
                moved.append(name)
        for name in files:
            os.replace(staging / name, directory / name)
            placed.append(name)
    except BaseException:
        for name in placed:
            os.unlink(directory / name)
        for name in moved:
            os.replace(backup / name, directory / name)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
