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
import errno
import hashlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["TEMP_PREFIX", "atomic_path", "atomic_write", "check_writable", "remove_orphaned_temporaries", "temp_prefix",
           "NotWritableError"]

#: Name prefix of the temporary files (dot-files: never published, never read as results).
TEMP_PREFIX = ".tmp-"
# ".tmp-<pid>@<host>~<stem>.<random><suffix>": the writer's process id and host name, so that a
# cleanup removes only files whose writer is gone (another build may be writing into a shared cache)
_HOST = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)@([A-Za-z0-9._-]+)~")
#: Age after which a temp file of another host (or of an unknown writer) counts as orphaned: its
#: writer's process cannot be checked from here, and no single atomic write takes this long.
FOREIGN_TEMP_AGE_S = 24 * 3600


def temp_prefix(stem: str) -> str:
    """Name prefix of this process's temp files: the writer is named, so cleanup can tell if it is gone."""
    return f"{TEMP_PREFIX}{os.getpid()}@{_HOST}~{stem}."


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path``.

    The temporary file keeps the target's suffix (some writers, e.g. ``numpy.savez``, choose the
    format from it). On an exception it is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.stem), suffix=path.suffix)
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


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _orphaned(path: Path, now: float) -> bool:
    """True when the writer of temp file ``path`` is gone (this host: its process has exited;
    another host or an unknown writer: the file is older than :data:`FOREIGN_TEMP_AGE_S`)."""
    m = _TEMP_NAME.match(path.name)
    if m and m.group(2) == _HOST:
        return not _process_alive(int(m.group(1)))
    try:
        return now - path.stat().st_mtime > FOREIGN_TEMP_AGE_S
    except FileNotFoundError:  # renamed into place or removed meanwhile
        return False


def remove_orphaned_temporaries(paths: Iterable[Path]) -> int:
    """Remove the temp files among ``paths`` whose writer is gone; return how many.

    Temp files of running writers (this or another build writing into the same folder) are kept:
    removing one would make its writer's rename fail.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / f"{TEMP_PREFIX}{os.getpid()}@{_HOST}~a.npz").write_text("being written")
    >>> _ = (d / f"{TEMP_PREFIX}999999999@{_HOST}~b.npz").write_text("writer killed")
    >>> remove_orphaned_temporaries(d.glob(f"{TEMP_PREFIX}*")), sorted(p.name[-5:] for p in d.iterdir())
    (1, ['a.npz'])
    """
    now = time.time()
    n = 0
    for path in paths:
        if path.name.startswith(TEMP_PREFIX) and _orphaned(path, now):
            try:
                path.unlink()
                n += 1
            except OSError:  # gone meanwhile, or another user's file in a shared folder (/tmp)
                pass
    return n


class NotWritableError(OSError):
    """A folder the build must write into cannot be written; the message says which and why."""


def check_writable(folders: dict[str, str | os.PathLike]) -> None:
    """Create each folder (``{what: path}``) if needed and write a probe file into it.

    Called before any computing, so a read-only output, docs, site or cache folder is reported at
    once (one line naming it) instead of after the models have run.

    >>> import tempfile
    >>> check_writable({"output dir": tempfile.mkdtemp()})
    >>> check_writable({"docs dir": "/dev/null/docs"})
    Traceback (most recent call last):
    ...
    atlas.files.NotWritableError: docs dir /dev/null/docs is not writable (Not a directory); choose a writable folder
    """
    for what, folder in folders.items():
        path = Path(folder)
        try:
            path.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=path, prefix=temp_prefix("probe"))
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
            raise NotWritableError(f"{what} {path} is not writable ({reason}); choose a writable folder") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks (checkpoints, manifest images).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a"
    >>> _ = p.write_bytes(b"abc")
    >>> sha256_file(p)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
