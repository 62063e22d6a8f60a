"""Phone numbers: normalise to E.164 and refuse what cannot receive a text."""

from __future__ import annotations

import phonenumbers
from phonenumbers import PhoneNumberType

DEFAULT_REGION = "US"
# Types that can receive an SMS. US/CA numbers are FIXED_LINE_OR_MOBILE in libphonenumber's
# metadata (the plan does not tell them apart), so that type has to be accepted.
_TEXTABLE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


class PhoneError(ValueError):
    pass


def normalize_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """`(555) 201-0123` -> `+15552010123`; raises PhoneError with a plain-language reason."""
    text = raw.strip().removeprefix("whatsapp:")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise PhoneError(f"{raw!r} is not a valid mobile number") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError(f"{raw!r} is not a valid mobile number")
    if phonenumbers.number_type(number) not in _TEXTABLE:
        raise PhoneError(f"{raw!r} is not a mobile number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def split_channel_address(address: str) -> tuple[str, str]:
    """`whatsapp:+1555...` -> ("whatsapp", "+1555..."); `+1555...` -> ("sms", "+1555...")."""
    if address.startswith("whatsapp:"):
        return "whatsapp", address.removeprefix("whatsapp:")
    return "sms", address
