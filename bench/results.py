"""The results history: one CSV row per run, appended; and how numbers are shown."""

from __future__ import annotations

import csv
import math
from pathlib import Path


def append_csv(path: Path, row: dict) -> None:
    """Append one row. When the row has columns the file lacks, the file is rewritten once with the union of the
    columns (old columns first, in their order); old rows keep their values and get empty new cells."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(row)
    old: list[dict] = []
    if path.exists() and path.stat().st_size > 0:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            if set(columns) <= set(header):
                with open(path, "a", newline="") as out:
                    csv.DictWriter(out, fieldnames=header, restval="").writerow(row)
                return
            old = list(reader)
        columns = header + [c for c in columns if c not in header]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(old)
        writer.writerow(row)


def fmt(value: float | int | None, digits: int = 1) -> str:
    """A number for the CSV and the table; empty for a missing one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")
