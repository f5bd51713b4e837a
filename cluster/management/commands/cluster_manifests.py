from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from cluster import manifests, services


class Command(BaseCommand):
    help = (
        "Write what each cluster should hold (namespaces, ResourceQuota, LimitRange and the "
        "Kueue queues), rendered from the portal's departments, quotas and service levels, "
        "as one kustomize directory per cluster: OUT/<cluster>/kustomization.yaml and one "
        "file per object. A re-render without a change writes the same bytes. Nothing is "
        "written when any object cannot be rendered."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, type=Path, help="Directory to write.")
        parser.add_argument("--cluster", help="Only this cluster (its slug).")
        parser.add_argument(
            "--no-prune",
            action="store_true",
            help="Keep the portal's directories of clusters that no longer exist.",
        )

    def handle(self, *args, out: Path, cluster: str | None, no_prune: bool, **options):
        try:
            fleet = manifests.render()
        except manifests.RenderError as exc:
            raise CommandError(
                "Nothing was written; fix these first:\n" + "\n".join(f"- {e}" for e in exc.errors)
            ) from exc
        if cluster is not None:
            known = [c.slug for c in fleet.clusters]
            if cluster not in known:
                raise CommandError(f"No cluster “{cluster}” (known: {', '.join(known)}).")
            fleet = fleet.select(cluster=cluster)
        try:
            written = services.manifests_write(fleet, out, prune=not no_prune and not cluster)
        except FileExistsError as exc:
            raise CommandError(str(exc)) from exc
        for c in fleet.clusters:
            line = f"{out / c.slug}: {written[c.slug]} objects"
            if c.holds:
                held = "; ".join(f"{d} ({', '.join(why)})" for d, why in sorted(c.holds.items()))
                line += f"; held: {held}"
            self.stdout.write(line)
