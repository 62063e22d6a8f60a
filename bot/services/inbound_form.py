"""Reading Twilio's inbound form: the fields checked and cleaned, the whole form kept.

Used by the webhook (bot.web.webhook) for a request, and by the spool's replay
(bot.services.spool) for a text the webhook kept while the database was down: the same form
parsed the same way, whenever it is stored. Twilio posts each field once, but the form is
read as a list of values per key so that nothing it posted is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from bot.log import log_event
from bot.services.inbound_store import InboundForm

log = logging.getLogger(__name__)

# Column sizes of inbound_messages: longer values are not Twilio's and are refused with 400.
MAX_SID = 64
MAX_ADDRESS = 40

Form = Mapping[str, Sequence[str]]


class BadForm(ValueError):
    """A signed request whose form cannot be stored (missing or impossible fields)."""


def clean(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold NUL; everything else is kept as posted.
    return value.replace("\x00", "\ufffd")


def first(form: Form, name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def field(form: Form, *names: str) -> str:
    """The first of `names` with a non-blank value, stripped and cleaned; "" when none."""
    for name in names:
        value = first(form, name)
        if value is not None and value.strip():
            return clean(value.strip())
    return ""


def num_media(form: Form) -> int:
    raw = (first(form, "NumMedia") or "").strip()
    # ASCII only: "²" and other Unicode digits pass isdigit() but not int().
    if raw.isascii() and raw.isdigit():
        return min(int(raw), 1000)
    if raw:
        # Not Twilio's; the text is still stored and processed, counting its media URLs.
        log_event(log, "webhook.num_media_unparsable", logging.WARNING, length=len(raw))
    return sum(1 for key in form if key.startswith("MediaUrl"))


def parse_form(form: Form) -> InboundForm:
    """The text Twilio posted, or BadForm naming what is missing or impossible."""
    sid = field(form, "MessageSid", "SmsMessageSid", "SmsSid")
    sender = field(form, "From")
    to = field(form, "To")
    if not sid:
        raise BadForm("MessageSid is missing")
    if len(sid) > MAX_SID:
        raise BadForm("MessageSid is too long")
    if not sender:
        raise BadForm("From is missing")
    if len(sender) > MAX_ADDRESS or len(to) > MAX_ADDRESS:
        raise BadForm("From or To is too long")
    return InboundForm(
        message_sid=sid,
        from_address=sender,
        to_address=to,
        body=clean(first(form, "Body") or ""),
        num_media=num_media(form),
        raw_form={key: [clean(v) for v in values] for key, values in form.items()},
    )
