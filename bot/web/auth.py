"""Dashboard accounts: login and logout, the logged-in user, role checks, CSRF and security
headers.

`init_app(app)` wires all of it. Every route needs a login except `/login`, `/healthz`, static
files and the signed Twilio webhooks (blueprint "webhook"), which are also the only routes
exempt from CSRF: they are authenticated by Twilio's signature, not by a browser session.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_login import login_required as _flask_login_required
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.wrappers import Response as WerkzeugResponse

from bot.models import User
from bot.services.audit import record
from bot.services.login import (
    ADDRESS_WINDOW_MINUTES,
    LOCK_MINUTES,
    MAX_FAILED_LOGINS,
    attempt_login,
)
from bot.services.staff_sessions import end_session, session_user, start_session

from . import ui
from .context import db, state, utcnow

P = ParamSpec("P")
R = TypeVar("R")

# Blueprints reachable without a dashboard login; "webhook" is also exempt from CSRF.
PUBLIC_BLUEPRINTS = frozenset({"health", "webhook"})
# A reset link is its own credential (bot/services/passwords.py).
PUBLIC_ENDPOINTS = frozenset({"auth.login", "staff.reset_password", "static"})
CSRF_EXEMPT_BLUEPRINTS = frozenset({"webhook"})

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)

SIGN_IN_REFUSED = (
    "That email and password do not match an account that can sign in. "
    f"After {MAX_FAILED_LOGINS} wrong passwords in a row an account is locked for "
    f"{LOCK_MINUTES} minutes; your admin can unlock it or give you a link to set a new password."
)

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
csrf = CSRFProtect()


class Staff(UserMixin):  # type: ignore[misc]
    """The logged-in user as Flask-Login sees it; `.user` is the row in this request's session
    and `.token` the sign-in it came with (bot/services/staff_sessions.py)."""

    def __init__(self, user: User, token: str) -> None:
        self.user = user
        self.token = token
        self.id = user.id
        self.email = user.email
        self.name = user.name
        self.role = user.role

    def get_id(self) -> str:
        # The cookie names the sign-in held on the server: once that row is gone (sign-out,
        # a password change or reset), a saved copy of the cookie opens nothing.
        return f"{self.user.id}.{self.token}"

    @property
    def is_active(self) -> bool:
        return bool(self.user.active)

    @property
    def first_name(self) -> str:
        return self.user.first_name

    @property
    def sees_everyone(self) -> bool:
        return self.user.sees_everyone

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"


def load_user(session_id: str) -> Staff | None:
    user_id, _, token = session_id.partition(".")
    if not user_id.isdigit() or len(user_id) > 18 or not token or len(token) > 100:
        return None
    user = session_user(db(), int(user_id), token, utcnow())
    return None if user is None else Staff(user, token)


def current_staff() -> Staff:
    """The logged-in user (views behind the login guard only)."""
    staff: Staff = current_user._get_current_object()
    return staff


def login_required(view: Callable[P, R]) -> Callable[P, R]:
    """Flask-Login's decorator (every dashboard route is also behind the global guard)."""
    wrapped: Callable[P, R] = _flask_login_required(view)
    return wrapped


def roles_required(*roles: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Allow only these roles; others get 403 (they know the page exists, e.g. from a link
    a colleague sent, so 404 would only confuse)."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not current_user.is_authenticated:
                abort(401)
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return login_required(wrapper)

    return decorator


def client_address() -> str:
    """The address the request came from (deployments behind a proxy wrap the app in
    werkzeug's ProxyFix so this is the client's, not the proxy's)."""
    return request.remote_addr or "unknown"


def _safe_next(target: str | None) -> str:
    """Only same-site paths: `next` must never send someone to another host after login."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target:
        return "/"
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | WerkzeugResponse | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    if request.method == "GET":
        return render_template("login.html", email="", error=None)

    session_db = db()
    email = request.form.get("email", "").strip().lower()
    attempt = attempt_login(
        session_db,
        email=email,
        password=request.form.get("password", ""),
        address=client_address(),
        now=utcnow(),
    )
    if attempt.outcome == "throttled":
        error = (
            "Too many failed sign-ins from this network. "
            f"Wait {ADDRESS_WINDOW_MINUTES} minutes, then try again."
        )
        return render_template("login.html", email=email, error=error), 429
    if attempt.outcome != "ok":
        # Unknown email, wrong password, locked or deactivated account: one answer for all,
        # so the page tells a guesser nothing about the account (issue 17.6).
        session_db.commit()
        return render_template("login.html", email=email, error=SIGN_IN_REFUSED), 401
    assert attempt.user is not None
    user = attempt.user
    token = start_session(session_db, user, utcnow())
    session_db.commit()
    target = _safe_next(request.args.get("next"))
    # A fresh session at login, so a session id planted before login is worthless after it.
    session.clear()
    login_user(Staff(user, token))
    return redirect(target)


@bp.post("/logout")
def logout() -> WerkzeugResponse:
    if current_user.is_authenticated:
        # The sign-in ends on the server: a saved copy of the cookie is refused from now on.
        end_session(db(), current_staff().token)
        record(
            db(),
            now=utcnow(),
            action="logout",
            actor="dashboard",
            user_id=current_user.id,
        )
        db().commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


def _wrong_method_on_a_public_route() -> bool:
    """GET on a webhook (or POST on /healthz) is answered 405 as it is (DESIGN.md), not sent
    to the login page or refused for want of a CSRF token."""
    return isinstance(request.routing_exception, MethodNotAllowed) and request.path.startswith(
        ("/twilio/", "/healthz")
    )


def _require_login() -> WerkzeugResponse | tuple[Response, int] | None:
    # Signed out, an unknown path also leads to the login page: no hint of which routes exist.
    if request.blueprint in PUBLIC_BLUEPRINTS or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if _wrong_method_on_a_public_route():
        return None
    if current_user.is_authenticated:
        return None
    if _wants_json():
        return jsonify(error="login required"), 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _check_csrf() -> None:
    if request.blueprint in CSRF_EXEMPT_BLUEPRINTS or _wrong_method_on_a_public_route():
        return
    csrf.protect()


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # same-origin: the CSRF check over https compares the Referer with the host, and nothing
    # about a participant's page leaks to other sites through a link.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure or state().config.public_base_url.startswith("https://"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.endpoint != "static":
        # Pages carry names and messages: never keep them in a shared browser's cache.
        headers.setdefault("Cache-Control", "no-store")
    return response


def _csrf_error(error: CSRFError) -> tuple[str, int]:
    return render_template(
        "error.html",
        title="This form has expired",
        message="The page was open too long or was opened in another window. "
        "Go back, reload the page, and try again.",
    ), 400


def _simple_error(code: int, title: str, message: str) -> Callable[[Any], Any]:
    def handler(_error: Any) -> Any:
        if _wants_json():
            return jsonify(error=title), code
        return render_template("error.html", title=title, message=message), code

    return handler


def init_app(app: Flask) -> None:
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked by _check_csrf below
    # Tokens live as long as the login: a coach may leave a page open through a long visit.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(hours=12))
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    app.config.setdefault("REMEMBER_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("REMEMBER_COOKIE_SECURE", app.config.get("SESSION_COOKIE_SECURE", False))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.user_loader(load_user)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.session_protection = "basic"
    app.before_request(_check_csrf)
    app.before_request(_require_login)
    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(
        403,
        _simple_error(403, "Not allowed", "Your role cannot open this page."),
    )
    app.register_error_handler(
        404,
        _simple_error(404, "Not found", "There is nothing here. Use the menu to find your way."),
    )
    app.jinja_env.globals["nav_items"] = nav_items
    app.context_processor(lambda: {"program_name": state().config.program_name})
    ui.init_app(app)
    app.register_blueprint(bp)


# Dashboard navigation: (path, label, roles that see it). Paths are DESIGN.md's routes, so a
# link appears before the page behind it is registered by another blueprint.
NAV: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("/", "Queue", ("coach", "coordinator", "admin")),
    ("/participants", "Participants", ("coach", "coordinator", "admin")),
    ("/templates", "Messages", ("coordinator", "admin")),
    ("/settings", "Settings", ("coordinator", "admin")),
    ("/reports", "Reports", ("coordinator", "admin")),
    ("/imports", "Imports", ("coordinator", "admin")),
    ("/users", "Users", ("admin",)),
    ("/audit", "Audit", ("admin",)),
)


def nav_items() -> list[dict[str, Any]]:
    if not current_user.is_authenticated:
        return []
    items = []
    path = request.path
    for href, label, roles in NAV:
        if current_user.role not in roles:
            continue
        current = path == href if href == "/" else path == href or path.startswith(href + "/")
        items.append({"href": href, "label": label, "current": current})
    if state().config.demo and current_user.role in ("coordinator", "admin"):
        # The simulator is for coordinators and admins (coaches get 403 there).
        items.append(
            {"href": "/simulator", "label": "Phone simulator", "current": path == "/simulator"}
        )
    return items
