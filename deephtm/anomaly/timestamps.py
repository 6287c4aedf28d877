"""Parsing the timestamps of CSV rows (used by source.csv and deephtm detect/score)."""
from __future__ import annotations

from datetime import datetime


def parse_timestamp(text: str, fmt: str = "", column: str = "timestamp") -> datetime:
    """A naive datetime from `text`: ISO 8601 when fmt is empty, else strptime(fmt).
    Raises ValueError with a message fit for 'line N: ...'."""
    text = text.strip()
    if not text:
        raise ValueError(f"missing timestamp in column '{column}'")
    try:
        stamp = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
    except ValueError:
        want = f"format {fmt!r}" if fmt else "ISO 8601, e.g. 2014-07-01 00:30:00"
        raise ValueError(f"unparsable timestamp {text!r:.40} in column '{column}' (expected {want})") from None
    return stamp.replace(tzinfo=None) if stamp.tzinfo is not None else stamp
