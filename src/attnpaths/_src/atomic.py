"""One atomic file writer for every results file, sample store and checkpoint of the package."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new, empty file `.{name}.XXXXXXXX.tmp` beside `path`, opened for writing.

    Created with mode 0o666 so that the kernel applies the user's umask, as for any file a tool writes
    (`tempfile.mkstemp` creates 0600 files: colleagues on a shared file system could not read the results).
    """
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}")


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call write(f) on a temporary file beside `path`, flush it to disk, then rename it over `path`.

    A reader (or an interrupted job) sees either the old file or the complete new one, never a partial write.
    The file gets the mode the user's umask gives (0o666 & ~umask), like the files of any other tool.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
