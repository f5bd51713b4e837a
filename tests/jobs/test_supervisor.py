"""A job's command and everything it starts die with their worker, even one killed by
SIGKILL: the supervisor hears of it (PR_SET_PDEATHSIG) and stops the whole group."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Stands in for a worker: starts the supervisor as the runner does, then waits.
WORKER = textwrap.dedent(
    """
    import subprocess, sys, time
    import django
    django.setup()
    from jobs.runner import _die_with_parent
    command = [sys.executable, "-c", sys.argv[1]]
    subprocess.Popen([sys.executable, "-m", "jobs.supervise", *command],
                     preexec_fn=_die_with_parent)
    time.sleep(60)
    """
)
# Stands in for a command that starts a helper of its own (a tensor-parallel worker).
COMMAND = textwrap.dedent(
    """
    import subprocess, sys, time
    helper = subprocess.Popen(["sleep", "60"])
    open(sys.argv[1] if len(sys.argv) > 1 else "pids", "w").write(str(helper.pid))
    time.sleep(60)
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_killed_worker_takes_the_commands_own_children_with_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "portal.settings"}
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, COMMAND], cwd=tmp_path, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "pids").exists() or not (tmp_path / "pids").read_text():
            assert time.monotonic() < deadline, "the command did not start its helper"
            time.sleep(0.1)
        helper = int((tmp_path / "pids").read_text())
        assert _alive(helper)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=5)
        deadline = time.monotonic() + 15
        while _alive(helper):
            assert time.monotonic() < deadline, "the command's helper outlived its worker"
            time.sleep(0.1)
    finally:
        if worker.poll() is None:
            worker.kill()
