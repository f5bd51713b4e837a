from django.core.management.base import BaseCommand
from django.utils import timezone

from metering.selectors import metering_status

MAX_GAPS_SHOWN = 10


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "never"


class Command(BaseCommand):
    help = (
        "Per metric source: hours covered by successful runs, the gaps between them, the "
        "last run and the last error."
    )

    def handle(self, *args, **options):
        for status in metering_status(now=timezone.now()):
            source = status.source
            state = "enabled" if source.enabled else "disabled"
            bills = ", bills" if source.is_billing else ""
            self.stdout.write(self.style.MIGRATE_HEADING(f"{source.name} ({state}{bills})"))
            self.stdout.write(
                f"  covered: {status.hours_covered} h since {_when(status.first_hour)}; "
                f"gaps: {status.gap_hours} h in {len(status.gaps)} gap(s)"
            )
            for start, end in status.gaps[:MAX_GAPS_SHOWN]:
                self.stdout.write(f"    gap {_when(start)} - {_when(end)}")
            if len(status.gaps) > MAX_GAPS_SHOWN:
                self.stdout.write(f"    … {len(status.gaps) - MAX_GAPS_SHOWN} more")
            last = status.last_run
            if last:
                self.stdout.write(
                    f"  last run: {last.status} at {_when(last.started_at)}, "
                    f"{last.rows_written} rows, {len(last.warnings)} warning(s)"
                )
            else:
                self.stdout.write("  last run: none")
            failure = status.last_failure
            if failure and (
                not status.last_success or failure.started_at > status.last_success.started_at
            ):
                self.stdout.write(self.style.ERROR(f"  last error: {failure.error}"))
            elif failure:
                self.stdout.write(f"  last error (since recovered): {failure.error}")
