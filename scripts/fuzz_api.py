"""Fuzz the HTTP API from its own OpenAPI document, longer than the test suite does.

Run: ``make fuzz``, or ``.venv/bin/python scripts/fuzz_api.py --examples 500 --seed 7``.
Runs ``tests/api/test_schema_fuzz.py`` (the real app, local storage, in-process
models) with ``--examples`` cases per operation and generation mode, from a fresh
random seed each run; the seed is printed so a failure can be replayed.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/api/test_schema_fuzz.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="cases per operation and mode")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: random)")
    args, pytest_args = parser.parse_known_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"fuzzing with {args.examples} examples per operation, seed {seed}", flush=True)
    env = os.environ | {
        "STEMSCRIBE_FUZZ_EXAMPLES": str(args.examples),
        "STEMSCRIBE_FUZZ_SEED": str(seed),
    }
    command = [sys.executable, "-m", "pytest", TEST, "-p", "no:cacheprovider", *pytest_args]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
