"""Atomic file writes: the one way every stage of the atlas writes a file.

A file is written to a temporary name in its own folder and renamed over the target with
:func:`os.replace` (atomic on POSIX and Windows), so a reader -- or a later build after a kill -9
-- sees either the old file or the complete new one, never a half-written one.

Example
-------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "sub" / "a.txt"
>>> _ = atomic_write(path, "hello")
>>> path.read_text()
'hello'
>>> with atomic_path(path) as tmp:          # for libraries that write to a path themselves
...     _ = pathlib.Path(tmp).write_text("bye")
>>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
('bye', ['a.txt'])
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TEMP_PREFIX", "atomic_path", "atomic_write"]

#: Name prefix of the temporary files (dot-files: never published, never read as results).
TEMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path``.

    The temporary file keeps the target's suffix (some writers, e.g. ``numpy.savez``, choose the
    format from it). On an exception it is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)  # mkstemp creates 0600; published files must be world-readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: str | bytes, *, skip_unchanged: bool = False) -> Path:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically; return the path.

    With ``skip_unchanged`` a file that already holds exactly ``data`` is not rewritten (its
    modification time stays, which keeps incremental site builds cheap).
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if skip_unchanged and path.is_file() and path.stat().st_size == len(raw) and path.read_bytes() == raw:
        return path
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)
    return path
