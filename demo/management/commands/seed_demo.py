from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.scenario import DEMO_PASSWORD, demo_seed


class Command(BaseCommand):
    help = (
        "Load the demo scenario (three departments, two GPU classes, quotas, SLAs, an "
        "off-peak window and one user per role). Running it again restores the scenario's "
        "values and changes nothing else."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="Where the portal is served."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Seed even with DEBUG off. The demo users share a published password.",
        )

    def handle(self, *args, url: str, force: bool, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "Refusing to create demo users with a published password while DEBUG is "
                "off (this looks like production). Pass --force if this is a demo machine."
            )
        logins = demo_seed()
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        self.stdout.write(
            f"\n  Portal:    {url}/\n  Admin:     {url}/admin/\n  API docs:  {url}/api/docs/\n"
        )
        self.stdout.write(f"\n  Every demo user's password is {DEMO_PASSWORD}\n")
        width = max(len(login.username) for login in logins)
        for login in logins:
            self.stdout.write(f"    {login.username:<{width}}  {login.role:<8}  {login.department}")
        self.stdout.write("")
