"""SMS segment counting (GSM 03.38 / 3GPP TS 23.038), so the editor can show what a message costs.

A message that uses only characters of the GSM 7-bit default alphabet and its extension table is
sent as GSM-7: up to 160 septets in one segment, or 153 per segment when it has to be split
(the rest of each segment is the concatenation header). Extension-table characters
(``^ { } \\ [ ~ ] | €`` and form feed) take two septets (an escape and the character), and the
pair is never split across two segments. Any other character forces the whole message into UCS-2:
UTF-16 code units, 70 in one segment or 67 per segment when split; a character outside the Basic
Multilingual Plane (most emoji) takes two code units, and a surrogate pair is never split.

This counts the text as given. Carriers or Twilio's optional "smart encoding" may replace some
characters (curly quotes, for example) before sending; that is not modelled here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "SegmentCount", "count_segments"]

# The GSM 7-bit default alphabet, in code order 0x00-0x7F. 0x1B (escape to the extension table)
# is left out: it is not a character anyone types. 0x09 is the capital C with cedilla (Ç).
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# The extension table: each costs two septets (escape + character).
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE_SEGMENT = 160
GSM7_MULTI_SEGMENT = 153
UCS2_SINGLE_SEGMENT = 70
UCS2_MULTI_SEGMENT = 67


@dataclass(frozen=True)
class SegmentCount:
    """How an SMS body will be encoded and how many segments it takes."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int  # 0 for an empty text
    non_gsm_chars: tuple[str, ...]  # distinct characters that forced UCS-2, in order of appearance


def _pack(sizes: list[int], single: int, multi: int) -> int:
    """Segments needed for characters of the given sizes, never splitting one character."""
    total = sum(sizes)
    if total == 0:
        return 0
    if total <= single:
        return 1
    segments, used = 1, 0
    for size in sizes:
        if used + size > multi:
            segments += 1
            used = 0
        used += size
    return segments


def count_segments(text: str) -> SegmentCount:
    """Encoding, units and segments for ``text``, and which characters (if any) force UCS-2."""
    non_gsm = tuple(
        dict.fromkeys(c for c in text if c not in GSM7_BASIC and c not in GSM7_EXTENSION)
    )
    if not non_gsm:
        sizes = [2 if c in GSM7_EXTENSION else 1 for c in text]
        return SegmentCount(
            encoding="GSM-7",
            units=sum(sizes),
            segments=_pack(sizes, GSM7_SINGLE_SEGMENT, GSM7_MULTI_SEGMENT),
            non_gsm_chars=(),
        )
    sizes = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return SegmentCount(
        encoding="UCS-2",
        units=sum(sizes),
        segments=_pack(sizes, UCS2_SINGLE_SEGMENT, UCS2_MULTI_SEGMENT),
        non_gsm_chars=non_gsm,
    )
