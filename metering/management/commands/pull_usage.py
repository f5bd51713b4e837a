import argparse
import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from core import calendar
from metering import collector, services
from metering.models import MeteringRun, MetricSource


def moment(value: str) -> dt.datetime:
    """An ISO 8601 date or date-time; UTC when it names no offset."""
    try:
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            if day is None:
                raise ValueError
            parsed = dt.datetime.combine(day, dt.time())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 date or date-time (2026-10-01 or "
            "2026-10-01T06:00, UTC unless it has an offset such as +02:00)."
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class Command(BaseCommand):
    help = (
        "Pull GPU usage from Prometheus into the hourly ledger for a window, by hand (for "
        "example to backfill a month). Idempotent: pulling a window again gives the same "
        "ledger. The window is cut into runs of METERING_QUERY_HOURS hours, each written "
        "in one transaction."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--source",
            action="append",
            help="Metric source name (repeat for several); every enabled source by default.",
        )
        parser.add_argument("--start", required=True, type=moment, help="ISO 8601, UTC default.")
        parser.add_argument("--end", required=True, type=moment, help="ISO 8601, exclusive.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, source, start, end, no_progress, **options):
        if end <= start:
            raise CommandError("--end must come after --start.")
        sources = MetricSource.objects.filter(enabled=True)
        if source:
            sources = MetricSource.objects.filter(name__in=source)
            missing = set(source) - set(sources.values_list("name", flat=True))
            if missing:
                known = ", ".join(MetricSource.objects.values_list("name", flat=True))
                raise CommandError(
                    f"No metric source {', '.join(sorted(missing))}; known: {known}."
                )
        start, end = calendar.floor_hour(start), calendar.ceil_hour(end)
        failed = []
        for metric_source in sources:
            runs, rows = 0, 0
            with tqdm(
                total=calendar.hour_count(start, end),
                unit="h",
                desc=metric_source.name,
                disable=no_progress,
                file=self.stderr,
            ) as bar:
                for chunk_start, chunk_end in collector.query_windows(start, end):
                    run = services.usage_pull(
                        source=metric_source, start=chunk_start, end=chunk_end, progress=bar.update
                    )
                    runs += 1
                    rows += run.rows_written
                    if run.status != MeteringRun.Status.SUCCEEDED:
                        failed.append(run)
                        self.stderr.write(f"{run}: {run.error}")
                        break
                    for warning in run.warnings:
                        self.stderr.write(f"{run}: {warning}")
            self.stdout.write(f"{metric_source.name}: {rows} hour rows written in {runs} run(s)")
        if failed:
            raise CommandError(
                f"{len(failed)} run(s) failed; the hours they did not cover are gaps that "
                "`manage.py metering_status` lists and the backfill task pulls again."
            )
