"""Reading numeric series from CSV files, with errors that name the file and line."""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from ..errors import DeepHTMError

MAX_CSV_BYTES = 512 * 1024 * 1024


def resolve_path(path: str, base_dir: str | os.PathLike | None) -> Path:
    p = Path(path)
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return p


def read_columns(path: str | os.PathLike, columns: list[str], skip_rows: int = 0) -> dict[str, list[str]]:
    """Read the named columns as strings. skip_rows: rows after the header to skip (e.g.
    the type and flag rows of NuPIC-style files)."""
    path = str(path)
    try:
        if os.path.getsize(path) > MAX_CSV_BYTES:
            raise DeepHTMError("CSV file is larger than 512 MiB", file=path)
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise DeepHTMError("CSV file is empty", file=path)
            header = [h.strip() for h in header]
            idx = {}
            for c in columns:
                if c not in header:
                    raise DeepHTMError(f"no column '{c}' (columns: {', '.join(header)})", file=path)
                idx[c] = header.index(c)
            out: dict[str, list[str]] = {c: [] for c in columns}
            for _ in range(skip_rows):
                next(reader, None)
            for row in reader:
                if not row:
                    continue
                for c, i in idx.items():
                    out[c].append(row[i].strip() if i < len(row) else "")
            return out
    except OSError as exc:
        raise DeepHTMError(exc.strerror or str(exc), file=path) from None
    except UnicodeDecodeError:
        raise DeepHTMError("not UTF-8 text", file=path) from None
    except csv.Error as exc:
        raise DeepHTMError(f"malformed CSV: {exc}", file=path) from None


def parse_floats(values: list[str], path: str, column: str, first_line: int) -> list[float]:
    """Strict: a value that is missing or not a finite number is an error naming its line."""
    out = []
    for i, text in enumerate(values):
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not math.isfinite(v):
            what = "missing value" if text == "" else f"non-numeric value {text!r:.30}"
            raise DeepHTMError(f"line {first_line + i}: {what} in column '{column}'", file=path)
        out.append(v)
    return out
