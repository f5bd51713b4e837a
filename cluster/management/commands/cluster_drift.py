from django.core.management.base import BaseCommand, CommandError

from cluster import selectors, services
from cluster.models import DriftCheck


class Command(BaseCommand):
    help = (
        "Compare each cluster with what the portal renders for it, reading kube-state-metrics' "
        "and Kueue's series from Prometheus; record the findings, mail IT the new ones, and "
        "print each department's verdict (in sync, drifted, missing, unknown) with what "
        "differs. Exits with an error when a cluster could not be compared."
    )

    def add_arguments(self, parser):
        parser.add_argument("--cluster", help="Only this cluster (its slug).")

    def handle(self, *args, cluster: str | None, **options):
        known = [slug for slug, _ in selectors.clusters()]
        if cluster is not None and cluster not in known:
            raise CommandError(f"No cluster “{cluster}” (known: {', '.join(known)}).")
        checks = services.drift_check(cluster=cluster)
        for check in checks:
            self.stdout.write(f"Cluster {check.cluster}: {check.get_status_display()}")
            for warning in check.warnings:
                self.stdout.write(f"  warning: {warning}")
            for verdict in selectors.drift_verdicts(cluster=check.cluster):
                line = f"  {verdict.department.slug}: {verdict.verdict.label.lower()}"
                if verdict.error:
                    line += f" ({verdict.error})"
                self.stdout.write(line)
                for finding in verdict.findings:
                    self.stdout.write(f"    - {finding.describe()}")
        failed = [c.cluster for c in checks if c.status == DriftCheck.Status.FAILED]
        if failed:
            raise CommandError(
                f"Could not compare {', '.join(failed)}: "
                + "; ".join(c.error for c in checks if c.status == DriftCheck.Status.FAILED)
            )
