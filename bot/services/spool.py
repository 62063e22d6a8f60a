"""The spool: signed texts kept on local disk while the database does not answer (DESIGN.md §1,
"Inbound is stored before it is processed"; issue 17.2), replayed in order once it is back.

Writing (the webhook, `spool_text`). One file per text in SPOOL_DIR, named
`<nanoseconds since the epoch, 20 digits>-<pid>-<counter>.json` so that names sort in arrival
order. The file is JSON (version 1): the raw form as Twilio posted it (a list of values per
key), the signature and the URL it was checked against (the file can be verified again), the
instant it arrived, and the reply given in the TwiML answer, if any. It is written to a hidden
temporary name, fsync'd, renamed into place and the directory fsync'd, all before the webhook
answers: once Twilio has our 200, the text survives a crash or a power cut. Files are 0600 (they
hold a phone number and a body).

The answer without the database (`offline_reply`): a crisis text (messages.crisis, no database
needed) gets the shipped crisis template, a HELP/INFO/AYUDA the shipped HELP template, anything
else nothing. Neither the coordinators' edited wording nor the person's language can be read,
so the language is the text's own: Spanish when every crisis rule it matched is a Spanish one
(or the keyword was AYUDA), English otherwise. The crisis reply goes even to a number that
opted out (nobody can tell): a reply to a person's own text, and one naming 988 and 911.

Replaying (`replay`, from every worker pass and from the next webhook request). Files are taken
in name order under an exclusive lock on `.replay.lock` (one replayer per spool at a time: a
second one skips). Each text is stored exactly as the webhook would have stored it, with the
instant it arrived (deduplicated by MessageSid: a text also stored another way, or replayed
before a crash, is not stored twice); in the same transaction the reply given in TwiML is
recorded as sent (`reply:<MessageSid>`), so processing never queues a second one; then it is
processed as usual (bot.services.inbound.process: the crisis flag and its page included), as of
the instant it arrived (consent changes, answers and flags carry the time the person texted,
and the ladder counts from then: after a long outage its next step is due at once), with any
other reply going through the outbox as for a late text. The file is removed only after that
commit. A database error stops the replay, leaving the file for the next one; a file that
cannot be read is moved to `rejected/` and logged (never counted as waiting).

Order: while the spool holds texts, a new text joins it instead of going straight to the
database (the webhook replays first, for a few seconds, and spools only what is then still
waiting), so a person's STOP spooled during an outage is never overtaken by their START.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.db import one_connection_session
from bot.log import log_event, mask_phone
from bot.models import InboundMessage, OutboundMessage
from bot.phones import split_channel_address
from bot.services import inbound
from bot.services.inbound_form import BadForm, Form, parse_form
from bot.services.inbound_handlers import record_reply
from bot.services.inbound_store import InboundForm, Incoming, mark_failed, store
from messages.crisis import detect_crisis
from messages.defaults import crisis_key, default_templates
from messages.keywords import Intent, classify_keyword
from messages.normalize import normalize
from messages.render import allowed_placeholders_for, render_template

log = logging.getLogger(__name__)

VERSION = 1
SUFFIX = ".json"
LOCK_NAME = ".replay.lock"
REJECTED = "rejected"
_counter = itertools.count()


@dataclass(frozen=True)
class OfflineReply:
    body: str
    purpose: str  # "crisis_reply" or "reply", as recorded in the outbox


@dataclass(frozen=True)
class SpooledText:
    form: dict[str, list[str]]
    received_at: datetime
    signature: str = ""
    url: str = ""
    reply: str | None = None
    reply_purpose: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "received_at": self.received_at.astimezone(UTC).isoformat(),
            "url": self.url,
            "signature": self.signature,
            "form": self.form,
            "reply": self.reply,
            "reply_purpose": self.reply_purpose,
        }

    @classmethod
    def of_json(cls, data: Any) -> SpooledText:
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError("not a version 1 spool file")
        form = data.get("form")
        if not isinstance(form, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
            for k, v in form.items()
        ):
            raise ValueError("form is not a mapping of lists of strings")
        received_at = datetime.fromisoformat(str(data["received_at"]))
        if received_at.tzinfo is None:
            raise ValueError("received_at has no offset")
        reply, purpose = data.get("reply"), data.get("reply_purpose")
        return cls(
            form=form,
            received_at=received_at.astimezone(UTC),
            signature=str(data.get("signature", "")),
            url=str(data.get("url", "")),
            reply=reply if isinstance(reply, str) else None,
            reply_purpose=purpose if isinstance(purpose, str) else None,
        )


@dataclass
class ReplayCounts:
    replayed: int = 0  # stored and processed now
    duplicates: int = 0  # already stored (and now processed, if it was not)
    rejected: int = 0  # unreadable, moved aside
    left: int = 0  # still waiting (the database failed again, or out of time)
    errors: list[str] = field(default_factory=list)


# --- the answer without the database -------------------------------------------------------------


def offline_reply(body: str, config: Config) -> OfflineReply | None:
    """What the webhook answers a text it could not store: the crisis reply, the HELP reply,
    or None (`<Response/>`). Shipped defaults, in the text's own language (module docstring)."""
    crisis = detect_crisis(body)
    if crisis.is_crisis:
        # The kind's reply (overdose: 911 first), as the webhook would give it.
        key = crisis_key(crisis.kind)
        language = "es" if _reads_as_spanish(body, crisis.matched) else "en"
        return OfflineReply(_default(key, language, config), "crisis_reply")
    if classify_keyword(body).intent is Intent.HELP:
        spanish = body.strip(" \t\r\n.!¡?¿").casefold().startswith("ayuda")
        return OfflineReply(_default("help", "es" if spanish else "en", config), "reply")
    return None


# Everyday Spanish words that English texts rarely use: enough to pick the reply's language when
# no rule named it (the learned layer alone caught the text).
_SPANISH_WORDS = frozenset(
    [
        "que",
        "no",
        "me",
        "mi",
        "ya",
        "quiero",
        "estoy",
        "vivir",
        "morir",
        "nadie",
        "nada",
        "para",
        "por",
        "con",
        "una",
        "uno",
        "los",
        "las",
        "del",
        "el",
        "la",
        "es",
        "esta",
        "mas",
        "pero",
        "porque",
        "todo",
        "todos",
        "ayuda",
        "puedo",
        "tengo",
        "voy",
    ]
)
_ENGLISH_WORDS = frozenset(
    [
        "i",
        "im",
        "the",
        "to",
        "and",
        "my",
        "me",
        "want",
        "dont",
        "cant",
        "no",
        "more",
        "it",
        "is",
        "you",
        "of",
        "just",
        "this",
    ]
)


def _reads_as_spanish(body: str, matched: tuple[str, ...]) -> bool:
    rules = [rule for rule in matched if rule != "learned_model"]
    if rules:
        return all(rule.startswith("es_") for rule in rules)
    words = normalize(body).split()
    spanish = sum(word in _SPANISH_WORDS for word in words)
    english = sum(word in _ENGLISH_WORDS for word in words)
    return spanish > english


def _default(key: str, language: str, config: Config) -> str:
    context = {
        "first_name": "",
        "coach_first_name": "",
        "program_name": config.program_name,
        "program_phone": config.program_phone,
    }
    template = default_templates()[(key, language)]
    return render_template(template, context, allowed=allowed_placeholders_for(key))


# --- writing -------------------------------------------------------------------------------------


def spool_text(spool_dir: Path, text: SpooledText) -> Path:
    """Write one text durably (temp file, fsync, rename, directory fsync); returns its path.
    Raises OSError when it cannot (the webhook then answers 503: Twilio's fallback)."""
    spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}-{next(_counter):06d}{SUFFIX}"
    final = spool_dir / name
    temporary = spool_dir / f".{name}.tmp"
    data = json.dumps(text.as_json(), ensure_ascii=False, separators=(",", ":")).encode()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, final)
    _fsync_dir(spool_dir)
    return final


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def waiting(spool_dir: Path) -> list[Path]:
    """The spooled texts, oldest first (names sort in arrival order)."""
    try:
        names = [
            entry.name
            for entry in os.scandir(spool_dir)
            if entry.name.endswith(SUFFIX) and not entry.name.startswith(".") and entry.is_file()
        ]
    except OSError:  # no spool yet
        return []
    return [spool_dir / name for name in sorted(names)]


def has_texts(spool_dir: Path) -> bool:
    try:
        with os.scandir(spool_dir) as entries:
            return any(
                e.name.endswith(SUFFIX) and not e.name.startswith(".") and e.is_file()
                for e in entries
            )
    except OSError:
        return False


def read(path: Path) -> SpooledText:
    return SpooledText.of_json(json.loads(path.read_bytes()))


# --- replaying -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _replay_lock(spool_dir: Path) -> Iterator[bool]:
    """An exclusive, non-blocking lock on the spool: True when this caller holds it."""
    try:
        fd = os.open(spool_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def replay(
    sessions: sessionmaker[Session],
    spool_dir: Path,
    *,
    now: datetime,
    config: Config,
    deadline: float | None = None,
) -> ReplayCounts:
    """Store and process the spooled texts, oldest first, until none is left, the database
    fails, or `time.monotonic()` passes `deadline`. Never raises for a database error (the
    texts stay spooled for the next replay)."""
    counts = ReplayCounts()
    if not has_texts(spool_dir):
        return counts
    with _replay_lock(spool_dir) as mine:
        if not mine:
            counts.left = len(waiting(spool_dir))
            return counts
        while True:
            paths = waiting(spool_dir)
            if not paths:
                break
            for index, path in enumerate(paths):
                if deadline is not None and time.monotonic() > deadline:
                    counts.left = len(paths) - index
                    return counts
                try:
                    outcome = _replay_one(sessions, path, now=now, config=config)
                except SQLAlchemyError as exc:
                    log_event(
                        log, "spool.replay_stopped", logging.WARNING, error=type(exc).__name__
                    )
                    counts.errors.append(type(exc).__name__)
                    counts.left = len(paths) - index
                    return counts
                setattr(counts, outcome, getattr(counts, outcome) + 1)
    if counts.replayed or counts.duplicates or counts.rejected:
        log_event(
            log,
            "spool.replayed",
            replayed=counts.replayed,
            duplicates=counts.duplicates,
            rejected=counts.rejected,
        )
    return counts


def _replay_one(
    sessions: sessionmaker[Session], path: Path, *, now: datetime, config: Config
) -> str:
    """One spooled text: stored (with its TwiML reply recorded as sent), processed, removed.
    Returns the ReplayCounts field to count it under."""
    try:
        text = read(path)
        form = parse_form(text.form)
    except FileNotFoundError:
        return "duplicates"  # another replayer took it between the listing and now
    except (OSError, ValueError, KeyError, BadForm) as exc:
        _reject(path, exc)
        return "rejected"
    with one_connection_session(sessions) as session:
        stored = store(session, form, now=text.received_at)
        if text.reply is not None:
            participant_id = (
                stored.participant_id
                if stored is not None
                else session.scalar(
                    select(InboundMessage.participant_id).where(
                        InboundMessage.message_sid == form.message_sid
                    )
                )
            )
            _record_twiml_reply(session, form, text, participant_id=participant_id)
        session.commit()  # stored for good, and its TwiML reply recorded, before anything acts
        _process(session, form, now=now, config=config)
    path.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    log_event(
        log,
        "spool.replayed_text",
        sid=form.message_sid,
        sender=mask_phone(form.from_address),
        duplicate=stored is None,
    )
    return "replayed" if stored is not None else "duplicates"


def _record_twiml_reply(
    session: Session, form: InboundForm, text: SpooledText, *, participant_id: int | None
) -> None:
    """Record the reply the webhook gave in TwiML as sent when it arrived. If a reply under
    that key was queued meanwhile (the text was stored but its processing failed, and a tick
    queued a late reply), the queued one is withdrawn: the person already has it."""
    assert text.reply is not None
    incoming = Incoming(
        id=0,
        message_sid=form.message_sid,
        from_address=form.from_address,
        channel=split_channel_address(form.from_address)[0],
        body=form.body,
        received_at=text.received_at,
        participant_id=participant_id,
    )
    created = record_reply(
        session,
        incoming,
        text.reply,
        purpose=text.reply_purpose or "reply",
        participant_id=participant_id,
        now=text.received_at,
        in_twiml=True,
    )
    if not created:
        session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.idempotency_key == f"reply:{form.message_sid}",
                OutboundMessage.status == "pending",
            )
            .values(
                status="cancelled",
                error_message="answered in TwiML while the database was down",
                status_updated_at=text.received_at,
            )
            .execution_options(synchronize_session=False)
        )


def _process(session: Session, form: InboundForm, *, now: datetime, config: Config) -> None:
    """Process the stored text unless it already was (or another process holds it). Its reply,
    other than one given in TwiML (recorded already), goes through the outbox: the late path."""
    row = session.scalars(
        select(InboundMessage)
        .where(
            InboundMessage.message_sid == form.message_sid,
            InboundMessage.processing_state != "processed",
        )
        .with_for_update(skip_locked=True)
    ).first()
    if row is None:
        session.rollback()
        return
    message = Incoming.of(row)
    try:
        # As of the moment the person sent it: their consent changes, answers and flags in the
        # order and at the time they texted (a START after a spooled STOP is not "late").
        inbound.process(session, message, now=message.received_at, config=config, in_twiml=False)
        session.commit()
    except SQLAlchemyError:
        session.rollback()
        raise  # the database failed again: the file stays for the next replay
    except Exception as exc:
        # A fault in processing this one text: it stays stored, `failed`, for a coach (and a
        # tick's retry); the spool goes on.
        session.rollback()
        inbound.log_processing_failed(exc, sid=message.message_sid, sender=message.from_address)
        mark_failed(session, message.id, exc, now=now)


def _reject(path: Path, error: Exception) -> None:
    rejected = path.parent / REJECTED
    rejected.mkdir(mode=0o700, exist_ok=True)
    os.replace(path, rejected / path.name)
    _fsync_dir(path.parent)
    log_event(log, "spool.rejected", logging.ERROR, file=path.name, error=type(error).__name__)


def form_of(fields: Form) -> dict[str, list[str]]:
    """The form as the spool keeps it: every value of every key, as posted."""
    return {key: list(values) for key, values in fields.items()}
