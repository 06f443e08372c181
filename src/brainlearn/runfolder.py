"""A run folder and what it guarantees: one writer at a time, no silent clobbering, readable files.

A run folder holds `checkpoint.pt`, `metrics.jsonl` and, at the end, `model.safetensors`. While a run
writes to it, the run holds an exclusive `fcntl.flock` lock on the folder's `.lock` file (which names
the holder's process id): a second run on the same folder is refused with one line instead of
interleaving its rows with the first's. The kernel drops the lock when the process ends, however it
ends (normal exit, Ctrl-C, divergence, a crash), so a stale lock file never blocks a later run.

A fresh run into a folder that already holds a run is refused unless it resumes the run or asks to
`overwrite` it, which deletes the old run's files before anything else is written; so the log and the
checkpoint always belong to the same run. Every file is written atomically, with the permissions the
user's umask gives (not a temporary file's 0600).
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from pathlib import Path

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
WEIGHTS = "model.safetensors"
LOCK = ".lock"
RUN_FILES = (CHECKPOINT, METRICS, WEIGHTS)


class RunFolderError(RuntimeError):
    """The run folder cannot be used as asked (in use, occupied, or not writable); nothing in it changed."""


def os_problem(error: OSError, what: str, advice: str) -> str:
    """One line for a filesystem error: what failed, on which path, why, and what to do."""
    if error.filename is None:
        return f"{what}: {error}; {advice}"
    return f"{what} {error.filename}: {error.strerror or error}; {advice}"


def create_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if isinstance(error, FileExistsError) or error.errno == errno.EEXIST:
            raise RunFolderError(f"cannot use {path} as a run folder: a file of that name exists; "
                                 "choose another --run-dir") from error
        raise RunFolderError(os_problem(error, "cannot create the run folder", "choose another --run-dir")) from error


def umask_mode(mode: int = 0o666) -> int:
    current = os.umask(0)
    os.umask(current)
    return mode & ~current


def write_atomically(path: Path, write) -> None:
    """`write(file)` into a temporary file beside `path`, then rename: a crash leaves the old file intact.
    The file gets the permissions a plain `open` would give it (0644 under the usual umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


class RunFolder:
    """`with RunFolder(path) as folder:` holds the folder's lock for the block (see the module's doc)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock_fd: int | None = None

    def __enter__(self) -> "RunFolder":
        create_folder(self.path)
        try:
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, umask_mode())
        except OSError as error:
            raise RunFolderError(os_problem(error, "cannot write in the run folder", "choose another --run-dir")) from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderError(f"run folder {self.path} is in use by another run (process {holder}); wait for it "
                                 "to end, or choose another --run-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def run_files(self) -> list[str]:
        """The run files already in the folder."""
        return [name for name in RUN_FILES if (self.path / name).exists()]

    def start_fresh(self, overwrite: bool) -> None:
        """Refuse to start a new run over an old one, unless `overwrite`: then delete the old run's files."""
        existing = self.run_files()
        if existing and not overwrite:
            raise RunFolderError(f"{self.path} already holds a run ({', '.join(existing)}); continue it with "
                                 "--resume, start over with --overwrite (deletes those files), or choose another "
                                 "--run-dir")
        for name in existing:
            (self.path / name).unlink()


def check_usable(path: Path, resume: bool, overwrite: bool) -> None:
    """What a launcher can check before it starts the processes of a run: the folder can be created and
    locked, and holds a run exactly when one is resumed (or is overwritten). Changes nothing in it."""
    existed = path.exists()
    with RunFolder(path) as folder:
        if resume and CHECKPOINT not in folder.run_files():
            raise RunFolderError(f"nothing to resume: no {CHECKPOINT} in {path}")
        if not (resume or overwrite):
            folder.start_fresh(overwrite=False)  # refuses an occupied folder; deletes nothing
    if not existed:
        (path / LOCK).unlink(missing_ok=True)
        path.rmdir()
