"""Running one job's command on a worker.

The command runs in a subprocess (no shell), in the job's folder
``MEDIA_ROOT/jobs/<id>/``, with its output and errors appended to ``job.log`` there. While
it runs, the worker sends a heartbeat every ``JOBS_HEARTBEAT_S`` seconds; the heartbeat
records the attempt's GPU time so far, hour by hour (:mod:`jobs.gpu_time`), adds it to the
worker's ``portal_job_gpu_seconds_total`` counter, and tells the worker when a cancel was
asked for, or when another worker has taken the job over (then this one stops at once and
records nothing more). The command is stopped when it passes the
job's max runtime. The command runs under :mod:`jobs.supervise` in a process group of its
own; when the worker dies (``PR_SET_PDEATHSIG`` on Linux) the supervisor stops the whole
group, so a killed worker leaves nothing running on the GPU, not even processes the
command started.
"""

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection

from jobs import argv as argv_rules
from jobs import metrics, services
from jobs.models import GenerationJob, JobState

logger = logging.getLogger(__name__)

LOG_NAME = "job.log"
_PR_SET_PDEATHSIG = 1


class Outcome:
    DONE = "done"  # this worker ran the attempt to its end and recorded it
    BUSY = "busy"  # another worker is running it: look again later
    SKIPPED = "skipped"  # ended, cancelled, or not found: nothing to do
    LOST = "lost"  # another worker took it over while this one ran it


try:  # loaded here, in the parent: loading a library between fork and exec can deadlock
    _libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
except OSError:  # pragma: no cover
    _libc = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    os.setsid()
    if _libc is not None:
        # The supervisor (jobs.supervise) hears of its worker's death and stops the group.
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def job_folder(job: GenerationJob) -> Path:
    return Path(settings.MEDIA_ROOT) / job.output_dir_name


def log_tail(path: Path, limit: int | None = None) -> str:
    limit = limit or settings.JOBS_LOG_TAIL_CHARS
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - limit))
            return log.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def result_files(folder: Path) -> list[str]:
    """The files the command left in the job's folder (not in sub-folders: those are its
    scratch space), which the job page offers for download."""
    if not folder.is_dir():  # the command removed it
        return []
    return sorted(
        path.name for path in folder.iterdir() if path.is_file() and path.name != LOG_NAME
    )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the command's process group, SIGKILL after a grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        # The supervisor itself gives the command the grace period, then kills its group.
        process.wait(timeout=settings.JOBS_STOP_GRACE_S + 5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def job_run(*, job_id, worker: str) -> str:
    """Run the job if this worker can take it (see :func:`jobs.services.job_start`)."""
    job = services.job_start(job_id=job_id, worker=worker)
    if job is None:
        state = GenerationJob.objects.filter(pk=job_id).values_list("state", flat=True).first()
        return Outcome.BUSY if state in (JobState.RUNNING, JobState.QUEUED) else Outcome.SKIPPED
    try:
        return _attempt(job, worker=worker)
    except Exception as exc:
        # Whatever went wrong around the command (its folder, the log, the database for a
        # moment), the attempt ends failed with the reason instead of leaving the job
        # "running" for the sweep to start again and again.
        logger.exception("Job %s: the attempt on %s failed", job.pk, worker)
        recorded = services.job_finish(
            job_id=job.pk,
            worker=worker,
            attempt=job.attempts,
            state=JobState.FAILED,
            reason=f"The worker {worker} failed while running it.",
            error=f"{type(exc).__name__}: {exc}",
        )
        return Outcome.DONE if recorded else Outcome.LOST


def _attempt(job: GenerationJob, *, worker: str) -> str:
    """One attempt of a job this worker holds, from its folder to its recorded end."""
    attempt = job.attempts
    folder = job_folder(job)
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / LOG_NAME
    labels = {"namespace": job.namespace, "gpu_class": job.gpu_class.slug, "kind": job.kind.slug}
    # The series exists (at 0) before the job's seconds are added to it: Prometheus'
    # increase() cannot count the first value it ever sees of a series.
    metrics.job_series_create(**labels)

    def finish(state, **fields) -> str:
        finished = services.job_finish(
            job_id=job.pk,
            worker=worker,
            attempt=attempt,
            state=state,
            log_tail=log_tail(log_path),
            result_files=result_files(folder),
            **fields,
        )
        if not finished:
            return Outcome.LOST
        metrics.job_gpu_seconds_add(**labels, seconds=float(finished.gpu_seconds_added))
        return Outcome.DONE

    try:
        argv = argv_rules.render(
            job.kind.argv_template,
            job.params,
            builtins={"output_dir": str(folder), "job_id": str(job.pk), "python": sys.executable},
        )
    except ValidationError as exc:
        return finish(
            JobState.FAILED,
            reason="Its parameters no longer fit the kind's command.",
            error="; ".join(exc.messages),
        )
    env = {
        **os.environ,
        "PORTAL_JOB_ID": str(job.pk),
        "PORTAL_OUTPUT_DIR": str(folder),
        "PORTAL_GPU_CLASS": job.gpu_class.slug,
        "PORTAL_GPUS": str(job.gpus),
        "JOBS_STOP_GRACE_S": str(settings.JOBS_STOP_GRACE_S),
        # The supervisor is imported from the portal's code, wherever the job runs.
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(settings.BASE_DIR), os.environ.get("PYTHONPATH", "")])
        ),
    }
    with log_path.open("ab") as log:
        log.write(f"--- attempt {attempt} on {worker}: {' '.join(argv)}\n".encode())
        log.flush()
        started = time.monotonic()
        program = shutil.which(argv[0], path=env.get("PATH"))
        if program is None:
            return finish(
                JobState.FAILED,
                reason=f"Its command could not start on {worker}.",
                error=f"{argv[0]}: No such file or directory (not installed on {worker}?)",
            )
        try:
            process = subprocess.Popen(  # noqa: S603 - an argv list, never a shell
                [sys.executable, "-m", "jobs.supervise", program, *argv[1:]],
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            return finish(
                JobState.FAILED,
                reason=f"Its command could not start on {worker}.",
                error=f"{argv[0]}: {exc.strerror or exc}",
            )
        outcome = _watch(
            job, process, worker=worker, attempt=attempt, started=started, labels=labels
        )
    if outcome == "lost":
        logger.warning("Job %s was taken over by another worker; this attempt stopped", job.pk)
        return Outcome.LOST
    if outcome == "cancelled":
        return finish(
            JobState.CANCELLED,
            exit_code=process.returncode,
            reason="Cancelled while running; the command was stopped.",
        )
    if outcome == "timeout":
        return finish(
            JobState.FAILED,
            exit_code=process.returncode,
            reason=f"Stopped after its max runtime of {job.max_runtime_s} s.",
            error=f"Ran longer than its max runtime of {job.max_runtime_s} s and was stopped.",
        )
    if process.returncode != 0:
        code = process.returncode
        what = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return finish(
            JobState.FAILED,
            exit_code=code,
            reason=f"The command {what}; see the log.",
            error=f"{argv[0]} {what}.",
        )
    return finish(JobState.SUCCEEDED, exit_code=0)


def _watch(job, process, *, worker: str, attempt: int, started: float, labels: dict) -> str:
    """Wait for the command, sending heartbeats (each records the GPU time so far, and the
    counter grows with it); stop it on cancel, takeover or timeout."""
    next_beat = started + settings.JOBS_HEARTBEAT_S
    while True:
        try:
            process.wait(timeout=min(1.0, settings.JOBS_HEARTBEAT_S))
            return "exited"
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if now - started > job.max_runtime_s:
            _stop(process)
            return "timeout"
        if now >= next_beat:
            next_beat = now + settings.JOBS_HEARTBEAT_S
            try:
                beat = services.job_heartbeat(job_id=job.pk, worker=worker, attempt=attempt)
            except Exception:  # the database blinked: keep running, try at the next beat
                logger.exception("Heartbeat of job %s failed", job.pk)
                # A broken connection is not reopened by itself inside a task.
                connection.close()
                continue
            if not beat.ours:
                _stop(process)
                return "lost"
            metrics.job_gpu_seconds_add(**labels, seconds=float(beat.gpu_seconds_added))
            if beat.cancel_requested:
                _stop(process)
                return "cancelled"
