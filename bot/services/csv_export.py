"""CSV files the app writes are safe to open in a spreadsheet (issue 17.7).

A cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return, which some
spreadsheets skip before reading one of those) is read as a formula: a participant named
`=HYPERLINK(...)` would run in a coordinator's spreadsheet. Such a cell gets a leading single
quote, which spreadsheets show as text (OWASP's advice). A plain number, such as an E.164 phone
`+12025550100` or `-3`, cannot call anything and is left as it is, so exported phones stay
importable.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def spreadsheet_safe(value: object) -> object:
    """The value as a cell no spreadsheet will run; non-strings are returned unchanged."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


class SafeWriter:
    """csv.writer whose every cell goes through spreadsheet_safe."""

    def __init__(self, out: Any, **options: Any) -> None:
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([spreadsheet_safe(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)
