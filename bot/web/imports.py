"""/imports: coordinators and admins upload a participants or appointments CSV, see what it
would do (created, updated, unchanged, re-planned, and every bad line) and confirm to write all
of it or nothing. The work is bot.services.import_preview's; this module is the HTTP side."""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from bot.models import PendingImport
from bot.models.imports import IMPORT_KINDS
from bot.services import import_preview as service
from bot.services.import_preview import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_LABEL,
    Counts,
    ImportContext,
    UploadRefused,
)
from bot.services.importer import (
    APPOINTMENT_OPTIONAL,
    APPOINTMENT_REQUIRED,
    PARTICIPANT_OPTIONAL,
    PARTICIPANT_REQUIRED,
    ImportFailed,
    LineError,
)

from .auth import current_staff, roles_required
from .context import db, state, utcnow

bp = Blueprint("imports", __name__)
ROLES = ("coordinator", "admin")
# The multipart envelope around a file of the largest size allowed.
REQUEST_LIMIT = MAX_UPLOAD_BYTES + 64 * 1024
TOO_LARGE = f"The file is larger than {MAX_UPLOAD_LABEL}; split it into smaller files."
COLUMNS = {
    "participants": (PARTICIPANT_REQUIRED, PARTICIPANT_OPTIONAL),
    "appointments": (APPOINTMENT_REQUIRED, APPOINTMENT_OPTIONAL),
}


def _context() -> ImportContext:
    user = current_staff()
    return ImportContext(
        user_id=user.id,
        recorded_by=f"dashboard:{user.email}",
        default_timezone=state().config.program_timezone,
    )


def _upload_page(
    *,
    kind: str = "",
    filename: str = "",
    problem: str | None = None,
    errors: list[LineError] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    session, now = db(), utcnow()
    return (
        render_template(
            "imports.html",
            title="Imports",
            kinds=IMPORT_KINDS,
            columns=COLUMNS,
            kind=kind,
            filename=filename,
            problem=problem,
            errors=errors or [],
            limit=MAX_UPLOAD_LABEL,
            pending=service.pending_imports(session, user_id=current_staff().id, now=now),
            recent=service.recent_imports(session),
        ),
        status,
    )


def _preview_page(
    pending: PendingImport,
    *,
    counts: Counts | None = None,
    changed: bool = False,
    problem: str | None = None,
    errors: list[LineError] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    return (
        render_template(
            "import_preview.html",
            title=f"Preview: {pending.filename}",
            pending=pending,
            counts=counts or Counts.from_dict(pending.counts),
            changed=changed,
            problem=problem,
            errors=errors or [],
            warnings=service.pending_warnings(pending),
        ),
        status,
    )


@bp.get("/imports")
@roles_required(*ROLES)
def index() -> ResponseReturnValue:
    return _upload_page()


@bp.post("/imports")
@roles_required(*ROLES)
def upload() -> ResponseReturnValue:
    session = db()
    kind = request.form.get("kind", "")
    file = request.files.get("file")
    if file is None or not file.filename:
        return _upload_page(kind=kind, problem="Choose a CSV file to upload.", status=422)
    filename = service.clean_filename(file.filename)
    data = file.stream.read(MAX_UPLOAD_BYTES + 1)
    try:
        pending = service.stage(
            session, kind=kind, filename=filename, data=data, now=utcnow(), context=_context()
        )
    except UploadRefused as refused:
        session.rollback()
        return _upload_page(
            kind=kind,
            filename=filename,
            problem=refused.message,
            errors=refused.errors,
            status=422,
        )
    except ImportFailed as failed:
        session.rollback()
        return _upload_page(
            kind=kind,
            filename=filename,
            problem=f"{filename}: {len(failed.errors)} "
            f"{'problem' if len(failed.errors) == 1 else 'problems'}. Nothing was imported; "
            "fix the lines below and upload the file again.",
            errors=failed.errors,
            status=422,
        )
    session.commit()
    return redirect(url_for(".show", token=pending.token))


def _pending_or_gone(token: str) -> PendingImport | None:
    return service.find_pending(db(), token, user_id=current_staff().id, now=utcnow())


def _gone() -> tuple[str, int]:
    return _upload_page(problem=service.GONE, status=410)


@bp.get("/imports/<token>")
@roles_required(*ROLES)
def show(token: str) -> ResponseReturnValue:
    pending = _pending_or_gone(token)
    if pending is None:
        return _gone()
    return _preview_page(pending)


@bp.post("/imports/<token>")
@roles_required(*ROLES)
def confirm(token: str) -> ResponseReturnValue:
    session = db()
    pending = _pending_or_gone(token)
    if pending is None:
        return _gone()
    filename, kind = pending.filename, pending.kind
    outcome = service.confirm(
        session,
        pending,
        sha256=request.form.get("sha256", ""),
        now=utcnow(),
        context=_context(),
        planner=state().planner,
    )
    session.commit()
    if outcome.written:
        flash(f"Imported {kind} from {filename}: {outcome.counts}.", "success")
        if outcome.warnings:
            # One notice (a flash lives in the cookie): the lines are on the settings page.
            count = len(outcome.warnings)
            flash(
                f"{count} appointment{'' if count == 1 else 's'} in {filename} "
                f"{'has a place' if count == 1 else 'have places'} with a sensitive word: "
                "reminders will say “the place you were given” instead. Settings lists "
                "the upcoming ones.",
                "warning",
            )
        return redirect(url_for(".index"))
    if outcome.problem == service.GONE:
        return _gone()
    pending = _pending_or_gone(token)
    if pending is None:
        return _gone()
    return _preview_page(
        pending,
        counts=outcome.counts,
        changed=outcome.changed,
        problem=outcome.problem,
        errors=outcome.errors,
        status=409,
    )


@bp.post("/imports/<token>/cancel")
@roles_required(*ROLES)
def cancel(token: str) -> ResponseReturnValue:
    pending = _pending_or_gone(token)
    if pending is not None:
        service.cancel(db(), pending)
        db().commit()
        flash("Import cancelled. Nothing was written.", "success")
    return redirect(url_for(".index"))


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_error: RequestEntityTooLarge) -> ResponseReturnValue:
    if not current_user.is_authenticated or current_user.role not in ROLES:
        return render_template("error.html", title="Too large", message=TOO_LARGE), 413
    return _upload_page(problem=TOO_LARGE, status=413)


def _allow_uploads() -> None:
    """The app's request limit (1 MB) would refuse an import file: raise it for the upload
    only, before anything reads the form."""
    if request.method == "POST" and request.path == "/imports":
        request.max_content_length = REQUEST_LIMIT


def init_app(app: Flask) -> None:
    # First of all before-request functions: the CSRF check and the input guard read the form.
    app.before_request_funcs.setdefault(None, []).insert(0, _allow_uploads)
    app.register_blueprint(bp)
