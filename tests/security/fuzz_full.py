"""The full fuzzing run: ``python -m tests.security.fuzz_full [--scale N] [--fixed] [pytest args]``.

It runs the same tests as the suite's bounded run (schemathesis on every operation of the OpenAPI
document, hypothesis on Open311 and on the parsers) with ``--scale`` times the examples (default 25:
100 per operation, generation mode and identity), drawn anew each run unless ``--fixed``. The
database is the test suite's own (``GIS_TEST_DATABASE_URL``, else the self-managed test cluster).
It stops by itself: the number of examples bounds it. Exit status is pytest's.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FUZZ_TESTS = ("test_fuzz_api.py", "test_open311_fuzz.py", "test_properties.py")


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzing tests with a larger budget; return pytest's exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.security.fuzz_full",
        description="Run schemathesis and hypothesis with a larger budget of examples (from the repository root).")
    parser.add_argument("--scale", type=float, default=25.0, help="multiply every test's examples (default 25)")
    parser.add_argument("--fixed", action="store_true", help="the suite's fixed examples, not new random ones")
    args, rest = parser.parse_known_args(argv)
    os.environ["GIS_FUZZ_SCALE"] = str(args.scale)
    if not args.fixed:
        os.environ["GIS_FUZZ_RANDOM"] = "1"
    os.chdir(HERE.parent.parent)  # the repository: pyproject.toml holds pytest's settings
    return pytest.main(["-p", "no:cacheprovider", "-q", *[str(HERE / name) for name in FUZZ_TESTS], *rest])


if __name__ == "__main__":
    sys.exit(main())
