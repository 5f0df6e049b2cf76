"""Run the benchmarks: ``python -m bench [NAME ...] [--points N]`` (all when none is named; options go to each)."""

from __future__ import annotations

import sys

from bench import analytics, api, fault, routing, webmap

BENCHMARKS = {"routing": routing.main, "api": api.main, "fault": fault.main, "analytics": analytics.main,
              "webmap": webmap.main}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks in turn; return the worst exit status."""
    argv = sys.argv[1:] if argv is None else argv
    chosen = [a for a in argv if a in BENCHMARKS] or list(BENCHMARKS)
    options = [a for a in argv if a not in BENCHMARKS]
    status = 0
    for name in chosen:
        print(f"# benchmark: {name}", flush=True)
        status = max(status, BENCHMARKS[name](options))
    return status


if __name__ == "__main__":
    sys.exit(main())
