"""Parsing of memory sizes and durations as users write them in specs and on the command line."""

from __future__ import annotations

import re

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_MULT = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_memory(value: str | int) -> int:
    """'2g', '512M', '1.5GiB', '100k' or a byte count → bytes (binary units, as Slurm uses)."""
    if isinstance(value, bool):
        raise ValueError("memory must be a size such as '2g' or '512m'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("memory cannot be negative")
        return value
    m = _MEMORY_RE.match(str(value))
    if not m:
        raise ValueError(f"cannot read memory {value!r}: write a size such as '2g', '512m' or '100k'")
    return int(float(m.group(1)) * _MULT[m.group(2).lower()])


_ISO_RE = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$", re.IGNORECASE)
_CLOCK_RE = re.compile(r"^(?:(?P<d>\d+)-)?(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+)$")


def parse_duration(value: str | int | float) -> int:
    """'PT30M', 'P1DT2H', '01:30:00', '1-00:00:00' (Slurm's days), '45:00' or seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration must be like 'PT30M' or '01:30:00'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return int(value)
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    m = _ISO_RE.match(text)
    if m and text.upper() not in ("P", "PT"):
        d, h, mi, s = (float(m.group(k) or 0) for k in "dhms")
        return int(d * 86400 + h * 3600 + mi * 60 + s)
    m = _CLOCK_RE.match(text)
    if m:
        d, h, mi, s = (int(m.group(k) or 0) for k in "dhms")
        return d * 86400 + h * 3600 + mi * 60 + s
    raise ValueError(f"cannot read duration {value!r}: write ISO 8601 like 'PT30M' or a clock like '01:30:00'")


def format_duration(seconds: int) -> str:
    """Seconds → Slurm's [D-]HH:MM:SS."""
    d, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{d}-{h:02d}:{m:02d}:{s:02d}" if d else f"{h:02d}:{m:02d}:{s:02d}"


def human_bytes(n: int | float | None) -> str:
    """Bytes as people read them: 512 B, 1.5 GiB, 12 MiB ("" for None)."""
    if n is None:
        return ""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(n)} B"
            return f"{n:.1f} {unit}" if abs(n) < 10 else f"{n:.0f} {unit}"
        n /= 1024
    return ""  # pragma: no cover - the loop always returns


def human_duration(seconds: int | float | None) -> str:
    """Seconds as people read them: 250ms, 3.2s, 45s, 3m05s, 2h03m, 3d04h ("" for None)."""
    if seconds is None:
        return ""
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 10:
        return f"{s:.1f}s"
    if s < 60:
        return f"{s:.0f}s"
    s = int(round(s))
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def format_memory(n: int) -> str:
    """Bytes → the shortest exact size that parse_memory reads back ('2g', '1536m', '100k', else bytes)."""
    for unit in "ptgmk":
        size = _MULT[unit]
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)
