"""``python -m demo.programs.lipsync --output DIR/talking-head.mp4 -- TEXT``: the digital
human's stand-in. Where production runs Wav2Lip over a face video and cloned speech, this
synthesises the speech with ``espeak-ng`` (``speech.wav`` next to the output) and has
``ffmpeg`` make a video of a drawn face whose mouth opens with the loudness of the speech.

Only the standard library and the two binaries are needed; no GPU, no model weights.
"""

import argparse
import math
import shutil
import subprocess
import sys
import wave
from array import array
from pathlib import Path

SIZE = 256  # pixels, square; even, as H.264 in yuv420p wants
FPS = 25
# Mouth heights (pixels): closed, half open, open; chosen by the loudness of each frame.
MOUTH_HEIGHTS = (2, 9, 17)
BACKGROUND = (38, 44, 56)
SKIN = (236, 188, 140)
HAIR = (74, 52, 36)
EYES = (34, 34, 40)
MOUTH = (128, 32, 44)


class Failed(Exception):
    """A step could not be done; the message says which and why."""


def face(mouth_height: int) -> bytes:
    """One RGB frame (``SIZE`` x ``SIZE``, rgb24) of the face, mouth ``mouth_height`` high."""
    pixels = bytearray(bytes(BACKGROUND) * SIZE * SIZE)
    centre, head_rx, head_ry = SIZE / 2, SIZE * 0.31, SIZE * 0.38
    eyes = [(SIZE * 0.39, SIZE * 0.41), (SIZE * 0.61, SIZE * 0.41)]
    mouth_x, mouth_y, mouth_rx = centre, SIZE * 0.68, SIZE * 0.12
    for y in range(SIZE):
        for x in range(SIZE):
            dx, dy = (x - centre) / head_rx, (y - centre) / head_ry
            if dx * dx + dy * dy > 1:
                continue
            colour = HAIR if y < SIZE * 0.27 else SKIN
            if any((x - ex) ** 2 + (y - ey) ** 2 <= (SIZE * 0.035) ** 2 for ex, ey in eyes):
                colour = EYES
            mx, my = (x - mouth_x) / mouth_rx, (y - mouth_y) / (mouth_height / 2)
            if mx * mx + my * my <= 1:
                colour = MOUTH
            offset = (y * SIZE + x) * 3
            pixels[offset : offset + 3] = bytes(colour)
    return bytes(pixels)


def loudness_per_frame(wav_path: Path, fps: int = FPS) -> list[float]:
    """The RMS level of each video frame's slice of a 16-bit mono/stereo WAV, 0 to 1."""
    with wave.open(str(wav_path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise Failed(f"{wav_path} is not 16-bit PCM.")
        channels, rate = wav.getnchannels(), wav.getframerate()
        samples = array("h", wav.readframes(wav.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()
    per_frame = max(1, round(rate / fps)) * channels
    levels = []
    for start in range(0, len(samples), per_frame):
        chunk = samples[start : start + per_frame]
        levels.append(math.sqrt(sum(s * s for s in chunk) / len(chunk)) / 32768)
    return levels


def mouth_heights(levels: list[float]) -> list[int]:
    """A mouth height per frame: open on the loudest frames, closed in the pauses."""
    loudest = max(levels, default=0) or 1
    heights = []
    for level in levels:
        share = level / loudest
        heights.append(MOUTH_HEIGHTS[0 if share < 0.12 else 1 if share < 0.45 else 2])
    return heights


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Failed(f"{name} is not installed on this worker (apt-get install {name}).")
    return path


def speak(text: str, wav_path: Path, *, voice: str, speed: int) -> None:
    command = [_binary("espeak-ng"), "-v", voice, "-s", str(speed), "-w", str(wav_path)]
    done = subprocess.run(  # noqa: S603 - an argv list, never a shell
        [*command, "--", text], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not wav_path.exists():
        raise Failed(f"espeak-ng failed (exit {done.returncode}): {done.stderr.strip()}")


def render(wav_path: Path, output: Path) -> int:
    """Encode the face, lip-synced to ``wav_path``, with the speech as sound; returns the
    number of video frames."""
    heights = mouth_heights(loudness_per_frame(wav_path))
    frames = {height: face(height) for height in MOUTH_HEIGHTS}
    command = [
        _binary("ffmpeg"),
        *("-hide_banner", "-loglevel", "warning", "-y"),
        *("-thread_queue_size", "64", "-f", "rawvideo", "-pix_fmt", "rgb24"),
        *("-s", f"{SIZE}x{SIZE}", "-r", str(FPS)),
        *("-i", "pipe:0", "-i", str(wav_path)),
        *("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-b:a", "96k", "-shortest", "-movflags", "+faststart"),
        str(output),
    ]
    encoder = subprocess.Popen(command, stdin=subprocess.PIPE)  # noqa: S603 - no shell
    try:
        for height in heights:
            encoder.stdin.write(frames[height])
    except BrokenPipeError:
        pass  # ffmpeg stopped early; its exit status says why
    finally:
        encoder.stdin.close()
    if encoder.wait() != 0 or not output.exists():
        raise Failed(f"ffmpeg failed (exit {encoder.returncode}); see its messages above.")
    return len(heights)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.programs.lipsync", description=__doc__)
    parser.add_argument("text", help="What the face says.")
    parser.add_argument("--voice", default="en-gb", help="An espeak-ng voice.")
    parser.add_argument("--speed", type=int, default=160, help="Words per minute.")
    parser.add_argument(
        "--output", type=Path, default=Path("talking-head.mp4"), help="The video to write."
    )
    args = parser.parse_args(argv)
    wav_path = args.output.with_name("speech.wav")
    try:
        print(f"Synthesising {len(args.text)} characters with espeak-ng ({args.voice}) …")
        speak(args.text, wav_path, voice=args.voice, speed=args.speed)
        print("Rendering the talking head with ffmpeg …", flush=True)
        frames = render(wav_path, args.output)
    except Failed as failure:
        print(failure, file=sys.stderr)
        return 1
    print(f"Wrote {args.output} ({frames} frames at {FPS} fps) and {wav_path}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
