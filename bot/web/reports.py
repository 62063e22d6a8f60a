"""/reports (charts and tables) and /reports.csv for coordinators."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from markupsafe import Markup

from bot.services.reports import DEFAULT_WEEKS, Report, build_report, report_csv, report_period

from .auth import roles_required
from .charts import Series, bar_chart
from .context import db, state, utcnow

bp = Blueprint("reports", __name__)
WEEK_CHOICES = (4, 8, 12, 26, 52)


def _weeks() -> int:
    try:
        weeks = int(request.args.get("weeks", DEFAULT_WEEKS))
    except ValueError:
        return DEFAULT_WEEKS
    return weeks if weeks in WEEK_CHOICES else DEFAULT_WEEKS


def _report(weeks: int) -> Report:
    zone = state().config.zone
    start, end = report_period(utcnow(), zone, weeks)
    return build_report(db(), start=start, end=end, zone=zone)


def _charts(report: Report) -> dict[str, Markup]:
    # bar_chart escapes every piece of text it writes, so its output is safe markup.
    weekly = bar_chart(
        "chart-weekly",
        "Scheduled texts per week: sent, delivered, replied",
        [w.week_start.strftime("%d %b") for w in report.weeks],
        [
            Series("Sent", [w.sent for w in report.weeks]),
            Series("Delivered", [w.delivered for w in report.weeks]),
            Series("Replied", [w.replied for w in report.weeks]),
        ],
    )
    rates = bar_chart(
        "chart-reply-rate",
        "Check-in reply rate by days since release",
        [r.label for r in report.reply_rates],
        [Series("Replied", [None if r.rate is None else 100 * r.rate for r in report.reply_rates])],
        y_max=100,
        unit="%",
    )
    flags = bar_chart(
        "chart-flags",
        "Flags opened and resolved, by reason",
        [f.reason.replace("_", " ") for f in report.flags],
        [
            Series("Opened", [f.opened for f in report.flags]),
            Series("Resolved", [f.resolved for f in report.flags]),
        ],
    )
    return {"weekly": Markup(weekly), "rates": Markup(rates), "flags": Markup(flags)}  # noqa: S704


@bp.get("/reports")
@roles_required("coordinator", "admin")
def index() -> str:
    weeks = _weeks()
    report = _report(weeks)
    return render_template(
        "reports.html",
        title="Reports",
        report=report,
        charts=_charts(report),
        weeks=weeks,
        week_choices=WEEK_CHOICES,
    )


@bp.get("/reports.csv")
@roles_required("coordinator", "admin")
def csv_download() -> Response:
    weeks = _weeks()
    report = _report(weeks)
    filename = f"checkin-report-{utcnow():%Y-%m-%d}-{weeks}w.csv"
    return Response(
        report_csv(report),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
