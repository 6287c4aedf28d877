"""Reading numeric series from CSV files, with errors that name the file and line."""
from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

from ..errors import DeepHTMError

MAX_CSV_BYTES = 512 * 1024 * 1024
MAX_LINE_CHARS = 1024 * 1024  # a CSV line longer than this is not a time series row


def resolve_path(path: str, base_dir: str | os.PathLike | None) -> Path:
    p = Path(path)
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return p


def check_regular_file(path: str | os.PathLike, max_bytes: int = MAX_CSV_BYTES) -> None:
    """Refuse what is not a regular file of bounded size before opening it: a device such as
    /dev/zero never ends and a FIFO blocks forever, and both report a size of 0."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise DeepHTMError(exc.strerror or str(exc), file=str(path)) from None
    if not stat.S_ISREG(st.st_mode):
        raise DeepHTMError("not a regular file (a folder, device or pipe): give a CSV file", file=str(path))
    if st.st_size > max_bytes:
        raise DeepHTMError(f"CSV file is larger than {max_bytes // (1024 * 1024)} MiB", file=str(path))


def bounded_lines(f, path: str):
    """The file's lines, refusing one longer than MAX_LINE_CHARS without reading all of it."""
    n = 0
    while True:
        line = f.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        n += 1
        if len(line) > MAX_LINE_CHARS:
            raise DeepHTMError(f"line {n}: longer than {MAX_LINE_CHARS:,} characters", file=path)
        yield line


def iter_rows(path: str | os.PathLike, columns: list[str], skip_rows: int = 0):
    """The named columns of each non-empty row after the header (and skip_rows: e.g. the type
    and flag rows of NuPIC-style files), as a tuple of stripped strings, one row at a time: a
    long file is never held in memory. A UTF-8 byte-order mark is accepted."""
    path = str(path)
    check_regular_file(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(bounded_lines(f, path))
            header = next(reader, None)
            if header is None:
                raise DeepHTMError("CSV file is empty", file=path)
            header = [h.strip() for h in header]
            idx = []
            for c in columns:
                if c not in header:
                    raise DeepHTMError(f"no column '{c}' (columns: {', '.join(header)})", file=path)
                idx.append(header.index(c))
            for _ in range(skip_rows):
                next(reader, None)
            for row in reader:
                if not row:
                    continue
                n = len(row)
                yield tuple(row[i].strip() if i < n else "" for i in idx)
    except OSError as exc:
        raise DeepHTMError(exc.strerror or str(exc), file=path) from None
    except UnicodeDecodeError:
        raise DeepHTMError("not UTF-8 text", file=path) from None
    except csv.Error as exc:
        raise DeepHTMError(f"malformed CSV: {exc}", file=path) from None
