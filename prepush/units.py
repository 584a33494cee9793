"""Quantities as a person reads them: bytes, rates and durations in the unit that fits."""

from __future__ import annotations


def human_bytes(size: float) -> str:
    """``512 B``, ``64.0 KB``, ``1.2 MB``, ``3.4 GB`` (decimal units, as link speeds are)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def human_rate(bytes_per_s: float) -> str:
    """A transfer rate in the unit that keeps its digits: ``40.0 KB/s``, never ``0.0 MB/s``."""
    return f"{human_bytes(bytes_per_s)}/s"


def human_duration(seconds: float) -> str:
    """``0.84 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 10 min``, ``2009 d 3 h``."""
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 10:
        return f"{sign}{seconds:.2f} s"
    if seconds < 60:
        return f"{sign}{seconds:.1f} s"
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{sign}{days} d {hours} h"
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    return f"{sign}{minutes} min {secs:02d} s"
