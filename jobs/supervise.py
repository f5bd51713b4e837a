"""Runs a job's command and takes every process it starts down with it.

The runner starts ``python -m jobs.supervise ARGV...`` in a session of its own, with
``PR_SET_PDEATHSIG`` set to SIGTERM, and stops a job by sending it SIGTERM. The command
runs in a process group of its own; on SIGTERM (the runner's, or the kernel's when the
worker dies, even by SIGKILL) the supervisor stops that whole group, SIGTERM and then
SIGKILL after the grace period: the command and whatever the command started (vLLM's
tensor-parallel workers, an ffmpeg child), which ``PR_SET_PDEATHSIG`` alone would leave
running on the GPU. The supervisor exits the way
the command did, so the runner reads the command's own exit status.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time

GRACE_S = float(os.environ.get("JOBS_STOP_GRACE_S", "10"))


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m jobs.supervise PROGRAM [ARGUMENT...]", file=sys.stderr)
        return 2
    stop_by: list[float] = []  # when the grace period ends, once stopping was asked for
    started: list[subprocess.Popen] = []

    def stop_group(signum, frame):
        if not stop_by:
            stop_by.append(time.monotonic() + GRACE_S)
            if started:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(started[0].pid, signal.SIGTERM)

    # Before the command starts, so that no stop request can fall between the two.
    signal.signal(signal.SIGTERM, stop_group)
    try:
        # Its own process group, which everything it starts inherits.
        command = subprocess.Popen(argv, process_group=0)  # noqa: S603 - an argv list
    except OSError as exc:
        print(f"{argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    started.append(command)
    if stop_by:  # asked to stop while it was starting
        os.killpg(command.pid, signal.SIGTERM)
    while (code := command.poll()) is None:
        if stop_by and time.monotonic() > stop_by[0]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(command.pid, signal.SIGKILL)
        time.sleep(0.1)
    if stop_by:
        # Helpers the command started and left behind (or that ignored SIGTERM).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(command.pid, signal.SIGKILL)
    if code < 0:  # killed by a signal: die of the same one, so the runner sees it
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
