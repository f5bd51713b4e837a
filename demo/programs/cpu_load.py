"""``python -m demo.programs.cpu_load --seconds N``: keep one CPU busy for N seconds, as a GPU
job keeps its GPU busy, then write ``result.json`` into the current folder (the job's).

It prints a line a second, which the worker keeps in the job's log.
"""

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

MAX_SECONDS = 3600


def burn(seconds: float, *, report=print) -> dict:
    """Hash a running digest for ``seconds`` of wall time; returns what was done."""
    digest = hashlib.sha256(b"portal cpu-load").digest()
    rounds = 0
    started = time.monotonic()
    next_report = started + 1
    while (now := time.monotonic()) - started < seconds:
        for _ in range(2000):
            digest = hashlib.sha256(digest).digest()
        rounds += 2000
        if now >= next_report:
            report(f"{now - started:5.1f} s  {rounds:,} hashes", flush=True)
            next_report += 1
    return {
        "seconds": seconds,
        "elapsed_s": round(time.monotonic() - started, 3),
        "hashes": rounds,
        "digest": digest.hex(),
        "pid": os.getpid(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.programs.cpu_load", description=__doc__)
    parser.add_argument("--seconds", type=float, required=True, help="How long to keep busy.")
    parser.add_argument(
        "--output", type=Path, default=Path("result.json"), help="Where to write the result."
    )
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be above 0 and at most {MAX_SECONDS}.")
    result = burn(args.seconds)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"Wrote {args.output}: {result['hashes']:,} hashes in {result['elapsed_s']} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
