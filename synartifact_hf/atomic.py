"""Files written whole or not at all: a temporary sibling (``.NAME.<random>.tmp``, so concurrent
writers never share one), then a rename; on any error the temporary file is removed and the old file,
if any, stays as it was. Every file the package writes goes through here: reports, cards, result
tables, indexes, figures, merged JSON lines, config files. (Folders are swapped into place by
:mod:`synartifact_hf.data.staging` / :func:`synartifact_hf.hub_folder.staged_folder`.)

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
>>> with atomic_path(target) as f:
...     _ = f.write("all or nothing")
>>> target.read_text()
'all or nothing'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "write_text_atomic"]

# mkstemp makes its file private (0600); the written file gets the permissions a plain open() would
# give it (0666 minus the umask), read once here because reading the umask means setting it.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike, mode: str | None = "w", *, encoding: str | None = None,
                fsync: bool = False) -> Iterator:
    """Write ``path`` through a temporary sibling that replaces it when the block ends without error.

    With ``mode`` (``"w"``, ``"wb"``, ...) the block gets the temporary file open in that mode (text is
    UTF-8 unless ``encoding`` says otherwise). With ``mode=None`` it gets the temporary ``Path``, for
    writers that want a file name (``fig.savefig(tmp)``, ``pyarrow.parquet.ParquetWriter(tmp)``); the
    name keeps ``path``'s suffix, so writers that pick a format from it still do. ``fsync=True`` flushes
    the data to disk before the rename (for results a crash must not lose). On any exception the
    temporary file is removed and the exception propagates; ``path`` is untouched.
    """
    target = Path(path)
    if mode is not None and not mode.startswith(("w", "x")):
        raise ValueError(f"atomic_path writes a new file; mode must be 'w', 'wb', 'x' or 'xb', got {mode!r}")
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    tmp = Path(name)
    try:
        if mode is None:
            os.close(fd)
            yield tmp
            if fsync:
                with tmp.open("rb+") as handle:
                    os.fsync(handle.fileno())
        else:
            binary = "b" in mode
            with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else (encoding or "utf-8")) as handle:
                yield handle
                if fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path`` as a ``Path``."""
    with atomic_path(path) as handle:
        handle.write(text)
    return Path(path)
