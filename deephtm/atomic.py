"""Atomic file writes: a crash leaves either the old file or the new one, never a torn one.

Every file the library writes (graphs, checkpoints, summaries, scores, images) goes through
here."""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from .errors import DeepHTMError


def check_can_write(path: str | os.PathLike, where: str) -> None:
    """Fail now, with one line naming `where` (e.g. '--out'), if `path` could not be written
    later: a file where a folder should be, or a folder that refuses a new file. Nothing is
    left on disk."""
    path = Path(path)
    if path.is_dir():
        raise DeepHTMError(f"{path} is a folder, not a file", where=where)
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise DeepHTMError(f"{folder} is a file, not a folder", where=where)
    probe = folder / f".deephtm-probe.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise DeepHTMError(f"cannot write in {folder}: {exc.strerror or exc}", where=where) from None


class AtomicFile:
    """A file written bit by bit that appears at its path whole or not at all: lines go to a
    temp file in the same folder (readable while it grows), commit() renames it over the
    target, and a failure or abort() removes it."""

    def __init__(self, path: str | os.PathLike, mode: str = "w"):  # "w": UTF-8 text, "wb": bytes
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        # Created like any new file (the umask applies), then given the old file's mode.
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self.file = os.fdopen(fd, "wb") if "b" in mode else os.fdopen(fd, "w", encoding="utf-8", newline="")

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            if self.path.exists():
                os.chmod(self.tmp, stat.S_IMODE(os.stat(self.path).st_mode))
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        _fsync_dir(self.path.parent)
        remove_stale_temps(self.path)

    def abort(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target, so a
    crash leaves either the old file or the new one, never a truncated one."""
    with AtomicFile(path, "wb") as f:
        f.file.write(data)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a power cut could otherwise undo it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(path: Path) -> None:
    """Delete temp files a killed writer of `path` left behind (.NAME.PID.RAND.tmp whose
    process is gone); a live writer's temp file is left alone."""
    prefix = f".{path.name}."
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        pid_text = tmp.name[len(prefix):].split(".")[0]
        if not pid_text.isdigit() or process_alive(int(pid_text)):
            continue
        try:
            tmp.unlink()
        except OSError:
            pass


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def process_alive(pid: int) -> bool:
    """Whether a process of this pid runs (when we cannot tell, yes: its files are kept)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or we cannot tell: keep its file
    return True


