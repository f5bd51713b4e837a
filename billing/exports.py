"""Exports of billing figures: the PDF statement that finance sends to a department, and
the chargeback report as flat rows for CSV and XLSX (the table renderers themselves are the
project's, in :mod:`core.api`, so both exports of a table agree cell for cell)."""

import datetime as dt
import io
from decimal import Decimal

from django.utils import timezone
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from rest_framework.renderers import BaseRenderer

from billing.models import LineKind, Statement
from billing.pricing import round_money
from core.api import error_as_json


def money_text(amount: Decimal, currency: str) -> str:
    """``amount`` rounded half-up to the currency's minor unit, with thousands separated:
    ``1,234.50 EUR``, ``1,235 JPY``."""
    return f"{round_money(amount, currency):,f} {currency}"


class PDFRenderer(BaseRenderer):
    """Passes through the PDF a view built (see :func:`statement_pdf`)."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        error = error_as_json(data, renderer_context)
        if error is not None:
            return error
        return data


# --- The PDF statement ----------------------------------------------------------------------


def _status_text(statement: Statement) -> str:
    if not statement.is_finalized:
        computed = (
            f", computed {timezone.localtime(statement.computed_at):%Y-%m-%d %H:%M %Z}"
            if statement.computed_at
            else ""
        )
        return f"DRAFT: the figures follow the ledger until the statement is finalized{computed}."
    user = statement.finalized_by
    if user is None:
        who = "automatically after the grace period"
    elif user.get_full_name():
        who = f"by {user.get_full_name()} ({user.username})"
    else:
        who = f"by {user.username}"
    return f"Finalized {timezone.localtime(statement.finalized_at):%Y-%m-%d %H:%M %Z} {who}."


def _line_derivation(line) -> str:
    if line.kind == LineKind.ADJUSTMENT and line.adjustment_id:
        original = line.adjustment.original
        return f"{line.description} (statement #{original.pk} of {original.period})"
    if line.rate_card_id:
        return f"{line.description} (rate card #{line.rate_card_id})"
    return line.description


def _watermark(text: str):
    def draw(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica-Bold", 110)
        canvas.setFillColor(colors.Color(0.85, 0.85, 0.85))
        canvas.translate(A4[0] / 2, A4[1] / 2)
        canvas.rotate(45)
        canvas.drawCentredString(0, -40, text)
        canvas.restoreState()

    return draw


def statement_pdf(statement: Statement, *, now: dt.datetime | None = None) -> bytes:
    """The statement as a PDF finance can send: department, cost centre, month, status
    (a DRAFT watermark on drafts; when and by whom a finalized one was finalized), each
    line with how it was derived, and the total, amounts rounded to the currency's minor
    unit. ``statement`` should come from :func:`billing.selectors.statement_with_lines`
    (its lines prefetched). Reads nothing else; writes nothing."""
    now = now or timezone.now()
    currency = statement.currency
    styles = getSampleStyleSheet()
    small = ParagraphStyle("small", parent=styles["BodyText"], fontSize=8, leading=10)
    number = ParagraphStyle("number", parent=small, alignment=TA_RIGHT)
    department = statement.department
    story = [
        Paragraph(f"GPU chargeback statement #{statement.pk}", styles["Title"]),
        Table(
            [
                ["Department", department.name],
                ["Cost centre", department.cost_centre],
                ["Month", f"{statement.period.month:%B %Y}"],
                ["Currency", currency],
                ["Status", Paragraph(_status_text(statement), small)],
            ],
            colWidths=[35 * mm, 135 * mm],
            style=TableStyle(
                [
                    ("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold"),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            ),
        ),
        Spacer(1, 6 * mm),
    ]
    rows = [["#", "Derivation", "GPU-hours", f"Amount ({currency})"]]
    for position, line in enumerate(statement.lines.all(), start=1):
        rows.append(
            [
                str(position),
                Paragraph(_line_derivation(line), small),
                Paragraph(f"{line.gpu_hours:,.2f}", number),
                Paragraph(money_text(line.amount, currency), number),
            ]
        )
    if len(rows) == 1:
        rows.append(["", Paragraph("No usage this month.", small), "", ""])
    rows.append(["", "Total", "", money_text(statement.total, currency)])
    story.append(
        Table(
            rows,
            colWidths=[8 * mm, 107 * mm, 22 * mm, 33 * mm],
            repeatRows=1,
            style=TableStyle(
                [
                    ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                    ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
                    ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
                    ("LINEABOVE", (0, -1), (-1, -1), 0.5, colors.black),
                    ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("FONTSIZE", (0, 0), (-1, -1), 8),
                ]
            ),
        )
    )
    card_note = ""
    if statement.is_finalized:
        card_note = " Prices are those in force when it was finalized, kept with the statement."
    story += [
        Spacer(1, 6 * mm),
        Paragraph(
            "Each line: GPU-hours × price per GPU-hour × off-peak multiplier × department "
            "multiplier (× share, for idle capacity), rounded half-up to the currency's "
            f"minor unit; the total is the sum of the rounded lines.{card_note}",
            small,
        ),
        Paragraph(f"Generated {timezone.localtime(now):%Y-%m-%d %H:%M %Z}.", small),
    ]
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out,
        pagesize=A4,
        title=f"Statement {department.name} {statement.period.label}",
        author="GPU chargeback portal",
        leftMargin=20 * mm,
        rightMargin=20 * mm,
    )
    decorate = _watermark("DRAFT") if not statement.is_finalized else (lambda canvas, doc: None)
    document.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return out.getvalue()


def chargeback_table(report: dict) -> list[dict]:
    """The serialized chargeback report as flat rows for CSV and XLSX: every row has the
    same columns, a spend column per GPU class and the SLA figures per tier."""
    tiers = sorted(
        {f["tier"] for row in report["rows"] for f in [*row["queue_wait"], *row["latency"]]}
    )
    table = []
    for row in report["rows"]:
        flat = {
            "period": report["period"],
            "previous_period": report["previous_period"],
            **{key: row[key] for key in ("department", "department_name", "statement", "status")},
            "spend": row["spend"],
            "previous": row["previous"],
            "change": row["change"],
            "change_pct": row["change_pct"],
            "currency": row["currency"],
            "gpu_hours": row["gpu_hours"],
        }
        for name in report["gpu_classes"]:
            flat[f"spend {name}"] = row["spend_by_gpu_class"].get(name)
        if len(report["clusters"]) > 1:  # a fleet of several clusters: usage per cluster
            for name in report["clusters"]:
                flat[f"usage in {name or 'no named cluster'}"] = row["spend_by_cluster"].get(name)
        for key in ("budget_gpu_hours", "budget_used", "efficiency"):
            flat[key] = row[key]
        for figure_kind, unit in (("queue_wait", "s"), ("latency", "ms")):
            by_tier = {f["tier"]: f for f in row[figure_kind]}
            for tier in tiers:
                figure = by_tier.get(tier, {})
                flat[f"{figure_kind} p95 {tier} ({unit})"] = figure.get("p95")
                flat[f"{figure_kind} target {tier} ({unit})"] = figure.get("target")
                flat[f"{figure_kind} met {tier}"] = figure.get("met")
        flat["sla_met"] = row["sla_met"]
        table.append(flat)
    return table
