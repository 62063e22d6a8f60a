"""/participants/consent-evidence: who is waiting for consent evidence. While the program
requires a recorded consent source (Settings, Consent), no text goes to a participant without
one; coordinators and admins see them here, each linked to the form where it is recorded. The
list is bot.services.consent_evidence's; this module is the HTTP side."""

from __future__ import annotations

from flask import Blueprint, render_template

from bot.services import consent_evidence

from .auth import current_staff, roles_required
from .context import db, utcnow

bp = Blueprint("consent_evidence", __name__)


@bp.get("/participants/consent-evidence")
@roles_required("coordinator", "admin")
def index() -> str:
    session = db()
    return render_template(
        "consent_evidence.html",
        title="Waiting for consent evidence",
        required=consent_evidence.evidence_required(session),
        people=consent_evidence.waiting(session, current_staff(), utcnow()),
    )
