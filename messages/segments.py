"""SMS segment counting (GSM 03.38 / UCS-2), so editors and senders know what a text costs.

A message that fits the GSM-7 default alphabet is sent in 7-bit septets: 160 per single
segment, 153 per segment once it has to be split (the rest is the concatenation header).
Characters of the extension table (^ { } \\ [ ~ ] | € and form feed) take an escape plus the
character: two septets. One character outside both tables (an emoji, a curly quote, or Spanish
á í ó ú) switches the whole message to UCS-2: 70 UTF-16 code units per single segment, 67 per
segment when split; an emoji outside the Basic Multilingual Plane takes two code units.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


@dataclass(frozen=True)
class SegmentCount:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int
    non_gsm_chars: tuple[str, ...]  # the characters that forced UCS-2, in order of appearance


def _segments(units: int, single: int, multi: int) -> int:
    if units == 0:
        return 0
    if units <= single:
        return 1
    return -(-units // multi)


def count_segments(text: str) -> SegmentCount:
    non_gsm = tuple(
        dict.fromkeys(c for c in text if c not in GSM7_BASIC and c not in GSM7_EXTENSION)
    )
    if not non_gsm:
        septets = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        return SegmentCount("GSM-7", septets, _segments(septets, GSM7_SINGLE, GSM7_MULTI), ())
    code_units = len(text.encode("utf-16-le")) // 2
    return SegmentCount(
        "UCS-2", code_units, _segments(code_units, UCS2_SINGLE, UCS2_MULTI), non_gsm
    )
