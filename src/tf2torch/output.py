"""Atomic output: everything is written to a staging directory first, then moved in."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_outputs(directory: Path, files: dict[str, bytes]) -> Path:
    """Write all files or none: a failure leaves `directory` as it was."""
    directory = directory.resolve()
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tf2torch-staging-", dir=directory))
    try:
        for name, data in files.items():
            with open(staging / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        for name in files:
            os.replace(staging / name, directory / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return directory
