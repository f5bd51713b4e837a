from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from jobs.kinds import PRODUCTION_FILE, job_kind_specs_read, job_kinds_load


class Command(BaseCommand):
    help = (
        "Install or update job kinds from a JSON file (a list of kinds: slug, name, "
        "argv_template, params_schema, default_gpus, max_runtime_s, allowed_tiers, "
        "description, active), each validated like the admin validates it; all or nothing. "
        "New kinds take the file's active flag (off when absent); existing kinds keep "
        "theirs unless --activate or --deactivate."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "path",
            nargs="?",
            default=str(PRODUCTION_FILE),
            help="The JSON file; the digital-human production templates by default.",
        )
        switch = parser.add_mutually_exclusive_group()
        switch.add_argument(
            "--activate",
            dest="activate",
            action="store_const",
            const=True,
            help="Switch every loaded kind on (they accept jobs at once).",
        )
        switch.add_argument(
            "--deactivate",
            dest="activate",
            action="store_const",
            const=False,
            help="Switch every loaded kind off.",
        )

    def handle(self, *args, path, activate, **options):
        try:
            loaded = job_kinds_load(job_kind_specs_read(path), activate=activate)
        except FileNotFoundError:
            raise CommandError(f"No such file: {path}") from None
        except ValidationError as exc:
            raise CommandError(
                f"Nothing was loaded from {path}:\n  " + "\n  ".join(exc.messages)
            ) from None
        for item in loaded:
            state = "active" if item.kind.active else "inactive"
            self.stdout.write(f"  {item.action:<9}  {item.kind.slug}  ({state})")
        counts = {a: sum(i.action == a for i in loaded) for a in ("created", "updated")}
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(loaded)} job kinds from {path}: {counts['created']} created, "
                f"{counts['updated']} updated."
            )
        )
        if any(not item.kind.active for item in loaded):
            self.stdout.write(
                "Inactive kinds accept no jobs: switch them on in the admin (Job kinds) once "
                "the workers have their models, or run this again with --activate."
            )
