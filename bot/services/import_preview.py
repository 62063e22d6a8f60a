"""Imports in the dashboard: upload a CSV, see what it would do, confirm to write it (issue 18.2).

The preview is the import itself: `import_participants` / `import_appointments` run in the
session's transaction, which is then rolled back, so the counts and the `line N: column: why`
errors are exactly what the CLI would report. The uploaded text is kept server-side (a
`PendingImport` row with its SHA-256 and the counts the preview showed) for an hour. Confirming
runs the import again on that same text; it writes only when the file is the one previewed and
the import still does what the preview said (same counts), otherwise it writes nothing and
the new preview is shown instead.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.models import AuditLog, PendingImport, User
from bot.models.imports import IMPORT_KINDS
from bot.services import audit
from bot.services.importer import (
    ImportFailed,
    ImportSummary,
    LineError,
    import_appointments,
    import_participants,
)
from bot.services.settings_editing import Planner

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_UPLOAD_LABEL = "5 MB"
PENDING_FOR = timedelta(hours=1)
CONFIRMED_ACTION = "import.confirmed"
# The preview's warnings are kept in the pending import's counts under this key (no column).
WARNINGS_KEY = "warnings"
_SAVE_AS = "save it from your spreadsheet as “CSV UTF-8” and upload that"
GONE = (
    "This import was already confirmed or cancelled, or is more than an hour old. "
    "Upload the file again to see a new preview."
)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UploadRefused(Exception):
    """The upload is not a file the importer can read (too big, empty, another encoding).
    Nothing was kept or written. `errors` name the line when there is one."""

    def __init__(self, message: str, errors: list[LineError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


@dataclass(frozen=True)
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    replanned: int = 0

    @classmethod
    def of(cls, summary: ImportSummary) -> Counts:
        return cls(summary.created, summary.updated, summary.unchanged, summary.replanned)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Counts:
        return cls(
            **{k: int(values.get(k, 0)) for k in ("created", "updated", "unchanged", "replanned")}
        )

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.replanned} re-planned"
        )


@dataclass
class Outcome:
    """What confirming did. `written` only when the import was committed as previewed;
    otherwise `changed` (new counts, stored on the pending import for the next confirm),
    `errors` (the file no longer imports) or `problem` (why nothing was tried or kept)."""

    written: bool
    counts: Counts
    changed: bool = False
    errors: list[LineError] = field(default_factory=list)
    problem: str | None = None
    # Lines written as they are but worth a look (a place reminders will not name).
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportContext:
    """Who imports, and what the importer needs besides the file."""

    user_id: int
    recorded_by: str  # the importer's actor / consent_recorded_by, e.g. "dashboard:ana@…"
    default_timezone: str


# --- the upload ---------------------------------------------------------------------------


def decode_upload(data: bytes) -> str:
    """The file's text: UTF-8, with or without a byte-order mark; anything else is refused
    with a line saying what to do."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadRefused(
            f"The file is larger than {MAX_UPLOAD_LABEL}; split it into smaller files."
        )
    if not data.strip():
        raise UploadRefused("The file is empty.")
    if data.startswith(b"PK\x03\x04"):
        raise UploadRefused(
            "This is a spreadsheet workbook, not a CSV file",
            [LineError(1, f"the file is an Excel or other workbook, not CSV; {_SAVE_AS}")],
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UploadRefused(
            "The file is not UTF-8 text",
            [LineError(1, f"the file is UTF-16 text, not UTF-8; {_SAVE_AS}")],
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UploadRefused(
            "The file is not UTF-8 text",
            [
                LineError(
                    line,
                    f"byte 0x{data[exc.start]:02x} is not UTF-8 (the file may be Windows-1252 "
                    f"or Latin-1); {_SAVE_AS}",
                )
            ],
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise UploadRefused(
            "The file is not CSV text", [LineError(line, f"holds a NUL character; {_SAVE_AS}")]
        )
    return text


def clean_filename(name: str | None) -> str:
    """The file's own name, without any path or control characters, for the page and audit."""
    base = PurePosixPath((name or "").replace("\\", "/")).name
    base = _CONTROL.sub("", base).strip()
    return base[:255] or "upload.csv"


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- preview and confirm --------------------------------------------------------------------


def _run_import(
    session: Session,
    kind: str,
    text: str,
    *,
    now: datetime,
    context: ImportContext,
    filename: str | None = None,
) -> ImportSummary:
    stream = io.StringIO(text, newline="")
    if kind == "participants":
        # Consent without a source is recorded as asserted by this import: file, who, when.
        return import_participants(
            session,
            stream,
            now=now,
            default_timezone=context.default_timezone,
            recorded_by=context.recorded_by,
            filename=filename,
            recorded_by_id=context.user_id,
        )
    return import_appointments(session, stream, now=now, recorded_by=context.recorded_by)


def preview(
    session: Session,
    kind: str,
    text: str,
    *,
    now: datetime,
    context: ImportContext,
    filename: str | None = None,
) -> Counts:
    """What importing `text` would do now, computed by the import itself in the session's
    transaction and then rolled back (the session must hold no other unsaved work).
    Raises ImportFailed with every bad line."""
    return _preview(session, kind, text, now=now, context=context, filename=filename)[0]


def _preview(
    session: Session,
    kind: str,
    text: str,
    *,
    now: datetime,
    context: ImportContext,
    filename: str | None = None,
) -> tuple[Counts, list[str]]:
    _check_kind(kind)
    try:
        summary = _run_import(session, kind, text, now=now, context=context, filename=filename)
        return Counts.of(summary), [str(warning) for warning in summary.warnings]
    finally:
        session.rollback()


def pending_warnings(pending: PendingImport) -> list[str]:
    """The preview's warnings (`line N: column: why`), kept beside its counts."""
    return [str(w) for w in (pending.counts or {}).get(WARNINGS_KEY, [])]


def stage(
    session: Session,
    *,
    kind: str,
    filename: str | None,
    data: bytes,
    now: datetime,
    context: ImportContext,
) -> PendingImport:
    """Read and preview an upload, then keep it for confirming (flushed; the caller commits).
    Raises UploadRefused or ImportFailed: then nothing is kept and nothing is written."""
    _check_kind(kind)
    text = decode_upload(data)
    counts, warnings = _preview(
        session, kind, text, now=now, context=context, filename=clean_filename(filename)
    )
    purge_expired(session, now)
    pending = PendingImport(
        token=secrets.token_urlsafe(24),
        kind=kind,
        filename=clean_filename(filename),
        content=text,
        sha256=fingerprint(text),
        user_id=context.user_id,
        counts={**counts.as_dict(), WARNINGS_KEY: warnings},
        created_at=now,
        expires_at=now + PENDING_FOR,
    )
    session.add(pending)
    session.flush()
    return pending


def find_pending(
    session: Session, token: str, *, user_id: int, now: datetime
) -> PendingImport | None:
    """The uploader's own pending import, while it has not expired."""
    if not _TOKEN.fullmatch(token):
        return None
    pending = session.scalars(
        select(PendingImport).where(PendingImport.token == token, PendingImport.user_id == user_id)
    ).one_or_none()
    if pending is None or pending.expires_at <= now:
        return None
    return pending


def pending_imports(session: Session, *, user_id: int, now: datetime) -> list[PendingImport]:
    return list(
        session.scalars(
            select(PendingImport)
            .where(PendingImport.user_id == user_id, PendingImport.expires_at > now)
            .order_by(PendingImport.created_at.desc(), PendingImport.id.desc())
        )
    )


def confirm(
    session: Session,
    pending: PendingImport,
    *,
    sha256: str,
    now: datetime,
    context: ImportContext,
    planner: Planner | None = None,
) -> Outcome:
    """Write the pending import if it still does what its preview showed; the caller commits
    whatever the outcome (a written import, or the new preview's counts)."""
    previewed = Counts.from_dict(pending.counts)
    if (
        not secrets.compare_digest(sha256, pending.sha256)
        or fingerprint(pending.content) != pending.sha256
    ):
        # Another upload's page, or the stored text is not what was previewed.
        return Outcome(
            written=False,
            counts=previewed,
            problem="This is not the file that was previewed. Upload it again.",
        )
    kind, text, filename, token = pending.kind, pending.content, pending.filename, pending.token
    try:
        summary = _run_import(session, kind, text, now=now, context=context, filename=filename)
        counts = Counts.of(summary)
        warnings = [str(warning) for warning in summary.warnings]
        if counts != previewed:
            session.rollback()
            return _restage(session, token, counts, warnings)
        if planner is not None:
            # New people get their welcome, moved dates their new plan, from this moment.
            planner(session, now)
        audit.record(
            session,
            now=now,
            action=CONFIRMED_ACTION,
            actor="dashboard",
            user_id=context.user_id,
            detail={"kind": kind, "file": filename, "sha256": pending.sha256, **counts.as_dict()},
        )
        session.delete(pending)
        session.flush()
    except ImportFailed as failed:
        session.rollback()
        return Outcome(written=False, counts=previewed, errors=failed.errors)
    except IntegrityError:
        # Someone else wrote the same people or appointments at the same moment.
        session.rollback()
        return Outcome(
            written=False,
            counts=previewed,
            problem="Someone changed the same records while this was importing. "
            "Nothing was written; confirm again to see the new preview.",
        )
    return Outcome(written=True, counts=counts, warnings=warnings)


def _restage(session: Session, token: str, counts: Counts, warnings: list[str]) -> Outcome:
    pending = session.scalars(
        select(PendingImport).where(PendingImport.token == token)
    ).one_or_none()
    if pending is None:  # confirmed or cancelled in another window meanwhile
        return Outcome(written=False, counts=counts, problem=GONE)
    pending.counts = {**counts.as_dict(), WARNINGS_KEY: warnings}
    session.flush()
    return Outcome(written=False, counts=counts, changed=True, warnings=warnings)


def cancel(session: Session, pending: PendingImport) -> None:
    session.delete(pending)
    session.flush()


def purge_expired(session: Session, now: datetime) -> int:
    result = session.execute(delete(PendingImport).where(PendingImport.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class RecentImport:
    at: datetime
    who: str
    file: str
    kind: str
    counts: Counts


def recent_imports(session: Session, limit: int = 10) -> list[RecentImport]:
    """The latest imports confirmed in the dashboard, newest first, from the audit log."""
    rows = session.execute(
        select(AuditLog, User.name)
        .outerjoin(User, AuditLog.user_id == User.id)
        .where(AuditLog.action == CONFIRMED_ACTION)
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(limit)
    ).all()
    return [
        RecentImport(
            at=row.at,
            who=name or "",
            file=str((row.detail or {}).get("file", "")),
            kind=str((row.detail or {}).get("kind", "")),
            counts=Counts.from_dict(row.detail or {}),
        )
        for row, name in rows
    ]


def _check_kind(kind: str) -> None:
    if kind not in IMPORT_KINDS:
        raise UploadRefused("Choose what the file holds: participants or appointments.")
