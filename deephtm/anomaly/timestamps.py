"""Parsing the timestamps of CSV rows (used by source.csv and deephtm detect/score)."""
from __future__ import annotations

from datetime import datetime, timezone


def parse_timestamp(text: str, fmt: str = "", column: str = "timestamp") -> datetime:
    """A naive datetime from `text`: ISO 8601 when fmt is empty, else strptime(fmt). A
    timestamp with a UTC offset is converted to UTC; one without is taken as it is.
    Raises ValueError with a message fit for 'line N: ...'."""
    text = text.strip()
    if not text:
        raise ValueError(f"missing timestamp in column '{column}'")
    try:
        stamp = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
    except ValueError:
        want = f"format {fmt!r}" if fmt else "ISO 8601, e.g. 2014-07-01 00:30:00"
        raise ValueError(f"unparsable timestamp {text!r:.40} in column '{column}' (expected {want})") from None
    if stamp.tzinfo is not None:  # an offset is converted, not dropped: rows of mixed offsets stay in order
        try:
            stamp = stamp.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:
            raise ValueError(f"timestamp {text!r:.40} in column '{column}' is out of range in UTC") from None
    return stamp
