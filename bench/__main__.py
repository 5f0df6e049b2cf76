"""Run every benchmark: ``python -m bench [--points N]`` (options are passed to each one)."""

from __future__ import annotations

import sys

from bench import api, routing

BENCHMARKS = {"routing": routing.main, "api": api.main}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks in turn; return the worst exit status."""
    status = 0
    for name, run in BENCHMARKS.items():
        print(f"# benchmark: {name}", flush=True)
        status = max(status, run(argv if argv is not None else sys.argv[1:]))
    return status


if __name__ == "__main__":
    sys.exit(main())
