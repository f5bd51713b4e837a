"""Writing what the clusters should hold to a kustomize directory."""

import shutil
import tempfile
from pathlib import Path

from cluster.manifests import HEADER, Fleet


def _ours(directory: Path) -> bool:
    """Whether ``directory`` is a cluster directory the portal wrote (its kustomization
    starts with the portal's header), so it may be replaced or removed."""
    kustomization = directory / "kustomization.yaml"
    return kustomization.is_file() and kustomization.read_text().startswith(HEADER)


def manifests_write(fleet: Fleet, out: Path, *, prune: bool = True) -> dict[str, int]:
    """Write one kustomize directory per cluster of ``fleet`` under ``out``
    (``out/<cluster>/kustomization.yaml`` and one file per object), each swapped in whole
    by a rename; with ``prune``, remove the portal's directories of clusters that are gone.
    Another directory of the same name that the portal did not write is refused, never
    overwritten. Returns the number of objects written per cluster."""
    out.mkdir(parents=True, exist_ok=True)
    for c in fleet.clusters:
        target = out / c.slug
        if target.exists() and not _ours(target):
            raise FileExistsError(
                f"{target} exists and was not written by the portal (its kustomization.yaml "
                "lacks the portal's header); move it away or choose another --out."
            )
    written = {}
    for c in fleet.clusters:
        target = out / c.slug
        staging = Path(tempfile.mkdtemp(prefix=f".{c.slug}.", dir=out))
        for name, text in c.files().items():
            (staging / name).write_text(text)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{c.slug}.old.", dir=out))
            target.rename(retired / c.slug)
            staging.rename(target)
            shutil.rmtree(retired)
        else:
            staging.rename(target)
        written[c.slug] = len(c.manifests)
    if prune:
        kept = {c.slug for c in fleet.clusters}
        for directory in out.iterdir():
            if directory.is_dir() and directory.name not in kept and _ours(directory):
                shutil.rmtree(directory)
    return written
