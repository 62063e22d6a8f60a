"""Twilio's delivery error codes in words, the one table the dashboard reads them from (the
conversation view, the lists). Wording from Twilio's error dictionary, said for a coach:
what happened to the text and, where it helps, what to try."""

from __future__ import annotations

ERROR_WORDS: dict[int, str] = {
    21211: "not a valid phone number",
    21408: "texts to this country are not enabled on the account",
    21610: "they replied STOP: texts to them are blocked until they text START",
    21612: "this number cannot receive texts from ours",
    21614: "not a mobile number: it cannot receive texts",
    21617: "the text is too long",
    30001: "the carrier's queue overflowed: try again later",
    30002: "the Twilio account is suspended",
    30003: "phone unreachable: off or out of service",
    30004: "blocked: the number does not accept our texts",
    30005: "unknown number: it may no longer exist",
    30006: "landline or a carrier that cannot receive texts",
    30007: "filtered by the carrier as spam",
    30008: "not delivered, for an unknown reason",
    30032: "the sending number is not registered (US 10DLC)",
    30034: "the sending number is not registered (US 10DLC)",
    63016: "WhatsApp: outside the 24-hour window, a template is needed",
}


def describe_error(code: int | None) -> str:
    """`phone unreachable: off or out of service (30003)`; an unlisted code says its number;
    empty for None."""
    if code is None:
        return ""
    words = ERROR_WORDS.get(code)
    return f"{words} ({code})" if words else f"error {code}"
