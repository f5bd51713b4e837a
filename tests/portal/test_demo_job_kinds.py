"""The demo's job kinds run on any machine: each one, submitted as the demo's marketing
manager and run by the real runner (its argv, a subprocess in the job's folder), succeeds
and leaves the files it promises, without a GPU or model weights."""

import json
import shutil
import subprocess
import wave

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from demo.scenario import JOB_KINDS, demo_seed
from departments.models import Department
from jobs import runner, services
from jobs.models import GenerationJob, JobKind
from tests.conftest import require_service

pytestmark = pytest.mark.django_db


def _require_media_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "ffmpeg", "ffprobe") if not shutil.which(tool)]
    require_service(
        "espeak-ng and ffmpeg",
        not missing,
        f"not found: {', '.join(missing)}; apt-get install espeak-ng ffmpeg",
    )


def _probe(path, entries: str) -> dict:
    probed = subprocess.run(
        [shutil.which("ffprobe"), "-v", "error", "-show_entries", entries, "-of", "json", path],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(probed.stdout)


def _streams(path) -> list[str]:
    return sorted(s["codec_type"] for s in _probe(path, "stream=codec_type")["streams"])


def _run(kind_slug: str, params: dict) -> GenerationJob:
    demo_seed()
    submission = services.job_submit(
        department=Department.objects.get(slug="marketing"),
        kind=JobKind.objects.get(slug=kind_slug),
        params=params,
        tier="interactive",
        user=get_user_model().objects.get(username="marketing-manager"),
    )
    assert submission.job.state == "queued", submission.job.reason
    outcome = runner.job_run(job_id=submission.job.pk, worker="test-worker")
    assert outcome == runner.Outcome.DONE
    return GenerationJob.objects.get(pk=submission.job.pk)


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def test_every_demo_kind_is_valid_and_active():
    demo_seed()
    kinds = JobKind.objects.filter(slug__in=[spec["slug"] for spec in JOB_KINDS])
    assert sorted(kinds.values_list("slug", "active")) == [
        ("cpu-load", True),
        ("lipsync-render", True),
        ("speech-synthesis", True),
        ("video-render", True),
    ]
    for kind in kinds:
        kind.full_clean()


def test_cpu_load_keeps_a_cpu_busy_and_writes_its_result(media_root):
    job = _run("cpu-load", {"seconds": 1})
    assert job.state == "succeeded", job.log_tail
    result = json.loads((media_root / job.output_dir_name / "result.json").read_text())
    assert result["seconds"] == 1 and result["elapsed_s"] >= 1 and result["hashes"] > 0
    assert job.result_files == ["result.json"]
    assert float(job.gpu_seconds) >= 1


def test_speech_synthesis_speaks_the_text_into_a_wav_file(media_root):
    _require_media_tools()
    job = _run("speech-synthesis", {"text": "Welcome to the GPU portal.", "voice": "en-us"})
    assert job.state == "succeeded", job.log_tail
    with wave.open(str(media_root / job.output_dir_name / "speech.wav")) as speech:
        assert speech.getnframes() / speech.getframerate() > 1  # about 2 s of speech
    assert job.result_files == ["speech.wav"]


def test_video_render_renders_a_video_of_the_asked_length(media_root):
    _require_media_tools()
    job = _run("video-render", {"seconds": 2, "colour": "teal"})
    assert job.state == "succeeded", job.log_tail
    video = media_root / job.output_dir_name / "render.mp4"
    duration = _probe(video, "format=duration")["format"]["duration"]
    assert float(duration) == pytest.approx(2, abs=0.1)
    assert _streams(video) == ["video"]


def test_lipsync_render_makes_a_talking_head_with_the_speech(media_root):
    _require_media_tools()
    job = _run("lipsync-render", {"text": "Our new product ships today."})
    assert job.state == "succeeded", job.log_tail
    assert job.result_files == ["speech.wav", "talking-head.mp4"]
    assert _streams(media_root / job.output_dir_name / "talking-head.mp4") == ["audio", "video"]


def test_a_text_that_starts_with_a_dash_is_refused_not_passed_as_an_option():
    demo_seed()
    with pytest.raises(ValidationError) as refused:
        services.job_validate(
            department=Department.objects.get(slug="marketing"),
            kind=JobKind.objects.get(slug="speech-synthesis"),
            params={"text": "--version"},
            tier="interactive",
        )
    assert "text: May not start with “-”" in refused.value.message_dict["params"][0]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"seconds": 31}, "seconds"),
        ({"colour": "red:s=9999x9999"}, "colour"),
    ],
)
def test_video_parameters_inside_the_ffmpeg_filter_are_bounded(params, field):
    demo_seed()
    with pytest.raises(ValidationError) as refused:
        services.job_validate(
            department=Department.objects.get(slug="marketing"),
            kind=JobKind.objects.get(slug="video-render"),
            params=params,
            tier="batch",
        )
    assert refused.value.message_dict["params"][0].startswith(f"{field}: ")
