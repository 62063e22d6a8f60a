"""WhatsApp's 24-hour customer-service window and the approved templates that reach past it.

WhatsApp lets a business send free text to a person only within 24 hours of that person's last
message to it. Outside that window a business-initiated message must be a template WhatsApp
has approved: in Twilio, a Content SID (`HX...`) sent with `ContentSid` and `ContentVariables`
instead of `Body`. Coordinators map each of our template keys and languages to such a Content
SID, and each of its numbered variables to one of our placeholders, on the Messages page.

Who decides what, in order:

- the enqueue (scheduler/enqueue.py) renders a WhatsApp contact's text as usual and, when its
  key and language are mapped, its template's variables too (`variables_for`); both go on the
  outbox row, which it leaves `pending` for the claim;
- the claim (bot/services/outbox/claims.py) reads the last inbound time of the batch's WhatsApp
  participants in one query (`last_inbound`) and asks bot.services.sendability.decide: inside
  the window the text goes as free text; outside it, as the mapped template; with none mapped it
  is not sent but recorded `needs_template`, and one program-level
  `whatsapp_template_missing` flag (high) tells coordinators what to map (`template_missing`);
- WhatsApp's own refusal of free text outside the window (Twilio error 63016, at the send or in
  a status callback) is recorded the same way and never retried as free text.

The window is read from the inbound texts themselves, so nothing on the inbound path changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.bulk import in_ids
from bot.models import InboundMessage, WhatsAppTemplate
from bot.services.flags import raise_program_flag

# WhatsApp's customer-service window, from the person's last message.
WINDOW = timedelta(hours=24)
# Twilio: "Message failed to send because more than 24 hours have passed since the customer
# last replied to this number" (free text outside the window).
OUTSIDE_WINDOW_CODE = 63016
FLAG_REASON = "whatsapp_template_missing"
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")


def last_inbound(session: Session, participant_ids: Iterable[int]) -> dict[int, datetime]:
    """Each of these participants' last inbound text time (one grouped query on the index of
    inbound texts by participant and time); people who never texted are absent."""
    ids = set(participant_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(InboundMessage.participant_id, func.max(InboundMessage.received_at))
        .where(in_ids(session, InboundMessage.participant_id, ids))
        .group_by(InboundMessage.participant_id)
    )
    return {pid: at for pid, at in rows if pid is not None and at is not None}


def in_window(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Whether free text may go now: the person wrote to us in the last 24 hours."""
    return last_inbound_at is not None and now - last_inbound_at < WINDOW


def mappings(session: Session) -> dict[tuple[str, str], WhatsAppTemplate]:
    """Every mapping, by (template key, language): a small table, read once per batch."""
    return {(m.template_key, m.language): m for m in session.scalars(select(WhatsAppTemplate))}


def variables_for(mapping: WhatsAppTemplate, context: Mapping[str, str]) -> str:
    """Twilio's ContentVariables: the mapping's numbered variables filled from the message's
    own context (the same neutral facts the free text uses), as a JSON object of strings."""
    values = {
        number: str(context.get(str(placeholder), ""))
        for number, placeholder in sorted(mapping.variables.items(), key=lambda kv: int(kv[0]))
    }
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def template_missing(session: Session, now: datetime, detail: dict[str, Any]) -> None:
    """Raise (or count another occurrence of) the one program-level flag for coordinators."""
    raise_program_flag(session, reason=FLAG_REASON, now=now, detail=detail)


class MappingRefused(ValueError):
    """A mapping the form cannot save, with a sentence for the coordinator."""


def parse_variables(text: str, allowed: Iterable[str]) -> dict[str, str]:
    """`1=first_name, 2=appointment_date` (commas, semicolons or new lines between pairs) ->
    {"1": "first_name", "2": "appointment_date"}; every placeholder must be one the template's
    key may use, every number a positive whole number."""
    allowed_names = set(allowed)
    variables: dict[str, str] = {}
    for part in re.split(r"[,;\n]+", text):
        part = part.strip()
        if not part:
            continue
        number, sep, name = part.partition("=")
        number, name = number.strip().strip("{}"), name.strip().strip("{}")
        if not sep or not number.isdigit() or int(number) < 1:
            raise MappingRefused(f"{part!r}: write each variable as number=placeholder")
        if name not in allowed_names:
            raise MappingRefused(
                f"{name!r} is not a placeholder this message may use "
                f"({', '.join(sorted(allowed_names))})"
            )
        variables[str(int(number))] = name
    return variables


@dataclass(frozen=True)
class MappingRow:
    id: int
    template_key: str
    language: str
    content_sid: str
    variables: str  # "1=first_name, 2=coach_first_name"


def describe_variables(variables: Mapping[str, Any]) -> str:
    return ", ".join(f"{n}={variables[n]}" for n in sorted(variables, key=int))


def list_mappings(session: Session) -> list[MappingRow]:
    return [
        MappingRow(m.id, m.template_key, m.language, m.content_sid, describe_variables(m.variables))
        for m in session.scalars(
            select(WhatsAppTemplate).order_by(
                WhatsAppTemplate.template_key, WhatsAppTemplate.language
            )
        )
    ]


def save_mapping(
    session: Session,
    *,
    template_key: str,
    language: str,
    content_sid: str,
    variables: dict[str, str],
    now: datetime,
    user_id: int | None,
) -> WhatsAppTemplate:
    """Map (or re-map) a key and language to an approved template."""
    sid = content_sid.strip()
    if not _CONTENT_SID.match(sid):
        raise MappingRefused("a Content SID is HX followed by 32 hexadecimal digits")
    mapping = session.scalars(
        select(WhatsAppTemplate).where(
            WhatsAppTemplate.template_key == template_key, WhatsAppTemplate.language == language
        )
    ).first()
    if mapping is None:
        mapping = WhatsAppTemplate(template_key=template_key, language=language)
        session.add(mapping)
    mapping.content_sid = sid
    mapping.variables = dict(variables)
    mapping.updated_at = now
    mapping.updated_by_id = user_id
    session.flush()
    return mapping
