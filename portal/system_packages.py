"""The Debian packages the demo and the tests run, and their installation.

``make demo`` (through ``run_demo``) and ``make test`` (``python -m portal.system_packages
test``) install what is missing with ``apt-get`` where that is possible here: as root, or
with password-less sudo. Elsewhere they say what is missing and the command that installs
it. This module imports nothing from Django, so the Makefile can run it before anything is
set up.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import suppress

# Tool on PATH -> Debian package, by purpose.
PROMETHEUS = {"prometheus": "prometheus", "promtool": "prometheus"}
MEDIA = {"espeak-ng": "espeak-ng", "ffmpeg": "ffmpeg", "ffprobe": "ffmpeg"}
BROWSER = {"chromium": "chromium"}
NEEDS = {
    # The demo jobs speak with espeak-ng and render with ffmpeg; run_demo installs
    # Prometheus by itself (it may use PROMETHEUS_BIN instead).
    "demo": MEDIA,
    # The metering tests run Prometheus over backfilled history, the job tests the demo
    # job kinds, the journeys Chromium.
    "test": {**PROMETHEUS, **MEDIA, **BROWSER},
}


def missing(tools: dict[str, str]) -> list[str]:
    """The packages of ``tools`` that are not on PATH, each once. Prometheus counts as
    there when PROMETHEUS_BIN and PROMTOOL_BIN name it; Chromium when
    PORTAL_TEST_CHROMIUM names a file."""
    chosen = {
        "prometheus": os.environ.get("PROMETHEUS_BIN"),
        "promtool": os.environ.get("PROMTOOL_BIN"),
        "chromium": os.environ.get("PORTAL_TEST_CHROMIUM"),
    }
    packages: list[str] = []
    for tool, package in tools.items():
        there = chosen.get(tool)
        found = os.path.exists(there) if there else shutil.which(tool)
        if not found and package not in packages:
            packages.append(package)
    return packages


def install_prefix() -> list[str] | None:
    """What runs apt-get as root here (``[]`` when we are root, sudo -n with password-less
    sudo), or ``None`` where we cannot: no apt-get, not root, no password-less sudo."""
    if not shutil.which("apt-get"):
        return None
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo:
        with suppress(OSError, subprocess.SubprocessError):
            checked = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [sudo, "-n", "true"], capture_output=True, timeout=10, check=False
            )
            if checked.returncode == 0:
                return [sudo, "-n"]
    return None


def apt_install(
    prefix: list[str], packages: list[str], why: str, say: Callable[[str], None]
) -> str | None:
    """apt-get update, then install ``packages`` (``prefix`` makes it root); returns the
    command that failed, or ``None``."""
    env = [*prefix, "env", "DEBIAN_FRONTEND=noninteractive"]
    for command in (
        [*env, "apt-get", "update"],
        [*env, "apt-get", "install", "-y", "--no-install-recommends", *packages],
    ):
        say(f"{why}; running: {' '.join(command)}")
        if subprocess.run(command, check=False).returncode != 0:  # noqa: S603
            return " ".join(command)
    return None


def ensure(tools: dict[str, str], say: Callable[[str], None]) -> list[str]:
    """Install the packages of ``tools`` that are missing, where we can; returns those
    still missing afterwards (with the reason said)."""
    packages = missing(tools)
    if not packages:
        return []
    prefix = install_prefix()
    failed = None
    if prefix is not None:
        failed = apt_install(prefix, packages, f"{', '.join(packages)} missing", say)
    still = missing(tools)
    if still:
        how = "apt-get failed: " + failed if failed else "no root and no password-less sudo"
        say(
            f"Not installed: {' '.join(still)} ({how}). Install them with:\n"
            f"    sudo apt-get install {' '.join(still)}"
        )
    return still


def main(argv: list[str]) -> int:
    """``python -m portal.system_packages demo|test``: install what that needs; exits 0
    with a notice when something stays missing (the tests that need it then skip and say
    why, unless PORTAL_REQUIRE_SERVICES=1), so the caller decides."""
    if len(argv) != 1 or argv[0] not in NEEDS:
        print(f"usage: python -m portal.system_packages {{{','.join(NEEDS)}}}", file=sys.stderr)
        return 2
    still = ensure(NEEDS[argv[0]], lambda line: print(line, flush=True))
    if still and argv[0] == "test":
        print(
            "The tests that need them will be skipped, each saying why "
            "(PORTAL_REQUIRE_SERVICES=1 makes them fail instead).",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
