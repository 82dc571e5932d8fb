"""Writing files: atomically, only inside the folder asked for, and with one-line errors.

- :func:`atomic_write_bytes` / :func:`atomic_write_text`: an interruption never leaves a
  half-written file;
- :func:`safe_name` and :func:`inside`: a name that comes from a user (a network's or a
  parameter's) never becomes a path of its own, and nothing is written outside its folder;
- :class:`WriteError` and :func:`writing`: a file that cannot be written (a read-only folder, a
  full disk, a path under ``/proc``) is one :class:`~rnnsym.errors.RnnsymError` naming the path
  and the reason, which the command line prints as one line with exit status 2.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import threading
from pathlib import Path

from .errors import RnnsymError


class WriteError(RnnsymError, OSError):
    """A file or folder could not be written: ``cannot write 'PATH': REASON``.

    Also an OSError, so that code which catches OSError around a write still catches it.
    """


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


@contextlib.contextmanager
def writing(path: str | os.PathLike):
    """Turn an OSError raised while writing ``path`` into one :class:`WriteError` naming ``path``.

    The path named is the one the user asked for, not a temporary file beside it.
    """
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(f"cannot write {str(path)!r}: {_reason(exc)}") from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    An interruption at any moment leaves either the old file or the new one, never half of one.
    A failure (read-only folder, full disk) raises :class:`WriteError` and leaves the old file.
    """
    path = Path(path)
    with writing(path), _interrupts_deferred():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a plain file would follow the umask
            os.replace(tmp, path)
        except BaseException:
            # A Ctrl-C that lands just after the rename finds no temporary file left to remove.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def _interrupts_deferred():
    """Ctrl-C (SIGINT) held back until the block is done, in the main thread (where Python runs its
    signal handlers): a KeyboardInterrupt between creating the temporary file and the ``try`` that
    removes it would leave the file behind. The interrupt is delivered as soon as the write is over,
    to the handler that was in place."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending and callable(previous):
            previous(signal.SIGINT, pending[0])  # Python's default raises KeyboardInterrupt here
        elif pending and previous == signal.SIG_DFL:
            os.kill(os.getpid(), signal.SIGINT)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def check_writable(folder: str | os.PathLike, named: str | os.PathLike | None = None) -> None:
    """Make sure files can be written in ``folder`` (created if missing), and leave no trace.

    For long commands (training), so that an unwritable ``--out`` is refused before the work, not
    after it. The folders it had to create to find out are removed again. Raises :class:`WriteError`
    naming ``named`` (default: ``folder``), the path the user gave.
    """
    folder = Path(folder)
    created = []
    with writing(folder if named is None else named):
        try:
            for parent in reversed([folder, *folder.parents]):
                if not parent.exists():
                    parent.mkdir()
                    created.append(parent)
            fd, probe = tempfile.mkstemp(prefix=".rnnsym-probe.", suffix=".tmp", dir=folder)
            os.close(fd)
            os.unlink(probe)
        finally:
            for parent in reversed(created):
                with contextlib.suppress(OSError):
                    parent.rmdir()


# Letters, digits, '-' and '_' only: safe on every file system, in a URL and in a shell.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_name(name: str, fallback: str = "network") -> str:
    """``name`` as a file-name stem: ASCII letters, digits, ``-`` and ``_``; never a path.

    Runs of other characters (``/``, ``.``, spaces, non-ASCII letters) become one ``-``; a name
    with nothing safe left in it becomes ``fallback``.

    >>> safe_name("../../escape"), safe_name(""), safe_name("my cell/v2"), safe_name("ÄÖ")
    ('escape', 'network', 'my-cell-v2', 'network')
    """
    stem = _UNSAFE.sub("-", str(name)).strip("-")
    return stem or fallback


def inside(folder: str | os.PathLike, name: str | os.PathLike) -> Path:
    """``folder / name``, checked to stay inside ``folder`` once both are resolved (links followed).

    >>> inside("/tmp/site", "a.md").name
    'a.md'
    >>> inside("/tmp/site", "../a.md")
    Traceback (most recent call last):
    rnnsym.errors.RnnsymError: refusing to write '../a.md': it is outside the output folder '/tmp/site'
    """
    root = Path(folder).resolve()
    path = (root / name).resolve()
    if path == root or not path.is_relative_to(root):
        raise RnnsymError(f"refusing to write {str(name)!r}: it is outside the output folder {str(folder)!r}")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
