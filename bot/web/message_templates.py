"""Coordinators' message editor: /templates (every key × language) and /templates/<id>
(edit with the placeholder allow-list beside it, live preview, version history, restore)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from bot.models import Template, WhatsAppTemplate
from bot.services import whatsapp_window
from bot.services.audit import record
from bot.services.locations import location_policy
from bot.services.template_groups import grouped
from bot.services.templates import (
    LANGUAGE_NAMES,
    Preview,
    TemplateRefused,
    describe_key,
    list_templates,
    list_versions,
    preview,
    restore_version,
    save_template,
)
from messages.render import MAX_BODY_CHARS, allowed_placeholders_for, sample_context

from .auth import current_staff, roles_required
from .context import db, state, utcnow

bp = Blueprint("message_templates", __name__)
EDITORS = ("coordinator", "admin")


def _template(template_id: int) -> Template:
    template = db().get(Template, template_id)
    if template is None:
        abort(404)
    return template


@bp.get("/templates")
@roles_required(*EDITORS)
def index() -> ResponseReturnValue:
    return _render_index({}, None, 200)


def _render_index(form: dict[str, str], error: str | None, status: int) -> tuple[str, int]:
    rows = list_templates(db())
    return (
        render_template(
            "message_templates.html",
            title="Messages",
            groups=grouped(rows),
            template_rows=rows,
            describe_key=describe_key,
            language_names=LANGUAGE_NAMES,
            whatsapp=whatsapp_window.list_mappings(db()),
            whatsapp_form=form,
            whatsapp_error=error,
        ),
        status,
    )


@bp.post("/templates/whatsapp")
@roles_required(*EDITORS)
def map_whatsapp() -> ResponseReturnValue:
    """Map a message (key and language) to an approved WhatsApp template: its Content SID and
    which placeholder fills each numbered variable."""
    form = {
        name: request.form.get(name, "").strip()
        for name in ("template", "content_sid", "variables")
    }
    key, _, language = form["template"].partition(":")
    session = db()
    known = {(row.key, row.language) for row in list_templates(session)}
    try:
        if (key, language) not in known:
            raise whatsapp_window.MappingRefused("choose one of the program's messages")
        variables = whatsapp_window.parse_variables(
            form["variables"], allowed_placeholders_for(key)
        )
        mapping = whatsapp_window.save_mapping(
            session,
            template_key=key,
            language=language,
            content_sid=form["content_sid"],
            variables=variables,
            now=utcnow(),
            user_id=current_staff().id,
        )
    except whatsapp_window.MappingRefused as refused:
        session.rollback()
        return _render_index(form, str(refused), 422)
    record(
        session,
        now=utcnow(),
        action="whatsapp_template.map",
        actor="dashboard",
        user_id=current_staff().id,
        detail={"template_key": key, "language": language, "content_sid": mapping.content_sid},
    )
    session.commit()
    flash(
        f"{describe_key(key)} ({LANGUAGE_NAMES.get(language, language)}) goes as "
        f"WhatsApp template {mapping.content_sid} outside the 24-hour window.",
        "success",
    )
    return redirect(url_for(".index") + "#whatsapp")


@bp.post("/templates/whatsapp/<int:mapping_id>/delete")
@roles_required(*EDITORS)
def unmap_whatsapp(mapping_id: int) -> ResponseReturnValue:
    session = db()
    mapping = session.get(WhatsAppTemplate, mapping_id)
    if mapping is None:
        abort(404)
    record(
        session,
        now=utcnow(),
        action="whatsapp_template.unmap",
        actor="dashboard",
        user_id=current_staff().id,
        detail={"template_key": mapping.template_key, "language": mapping.language},
    )
    session.delete(mapping)
    session.commit()
    flash("Mapping removed.", "success")
    return redirect(url_for(".index") + "#whatsapp")


def _render_editor(
    template: Template, body: str, error: TemplateRefused | None, status: int
) -> tuple[str, int]:
    allowed = allowed_placeholders_for(template.key)
    place = request.args.get("place")
    if place is None and "appointment_place" in allowed:
        place = sample_context(template.language)["appointment_place"]
    return (
        render_template(
            "template_edit.html",
            title=f"{describe_key(template.key)} ({LANGUAGE_NAMES.get(template.language, template.language)})",
            template=template,
            body=body,
            error=error,
            allowed=allowed,
            description=describe_key(template.key),
            language_name=LANGUAGE_NAMES.get(template.language, template.language),
            versions=list_versions(db(), template),
            preview=_preview(template, body, place),
            place=place,
            max_chars=MAX_BODY_CHARS,
            zone=state().config.program_timezone,
        ),
        status,
    )


def _preview(template: Template, body: str, place: str | None) -> Preview:
    """The preview with this program's name and phone, and the typed place rendered as the
    program's `locations` setting renders it."""
    return preview(
        template.key,
        template.language,
        body,
        program=_program(),
        place=place,
        include_place=location_policy(db()).include_in_reminders,
    )


def _program() -> dict[str, str]:
    """This program's name and phone for the preview, instead of the sample's made-up ones."""
    config = state().config
    values = {"program_name": config.program_name, "program_phone": config.program_phone}
    return {name: value for name, value in values.items() if value}


@bp.get("/templates/<int:template_id>")
@roles_required(*EDITORS)
def edit(template_id: int) -> ResponseReturnValue:
    template = _template(template_id)
    return _render_editor(template, template.body, None, 200)


@bp.post("/templates/<int:template_id>")
@roles_required(*EDITORS)
def save(template_id: int) -> ResponseReturnValue:
    template = _template(template_id)
    body = request.form.get("body", "")
    session = db()
    try:
        version = save_template(session, template, body, user_id=current_staff().id, now=utcnow())
    except TemplateRefused as refused:
        session.rollback()
        return _render_editor(template, body, refused, 422)
    session.commit()
    if version is None:
        flash("No change: the text is the same as the current version.", "info")
    else:
        flash(f"Saved as version {version.version}. The next texts use it.", "success")
    return redirect(url_for(".edit", template_id=template.id))


@bp.post("/templates/<int:template_id>/preview")
@roles_required(*EDITORS)
def preview_json(template_id: int) -> ResponseReturnValue:
    template = _template(template_id)
    payload = request.get_json(silent=True) or {}
    body, place = payload.get("body"), payload.get("place")
    if not isinstance(body, str) or not isinstance(place, str | None):
        return jsonify({"error": 'send {"body": "...", "place": "..." (optional)}'}), 400
    return jsonify(_preview(template, body, place).as_json())


@bp.post("/templates/<int:template_id>/restore/<int:version>")
@roles_required(*EDITORS)
def restore(template_id: int, version: int) -> ResponseReturnValue:
    template = _template(template_id)
    session = db()
    try:
        new = restore_version(session, template, version, user_id=current_staff().id, now=utcnow())
    except LookupError:
        abort(404)
    except TemplateRefused as refused:
        session.rollback()
        flash(f"Version {version} cannot be restored: {refused}", "error")
        return redirect(url_for(".edit", template_id=template.id))
    session.commit()
    flash(f"Restored version {version} as version {new.version}. The next texts use it.", "success")
    return redirect(url_for(".edit", template_id=template.id))
