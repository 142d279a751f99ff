"""``python -m rtrl_envs.benchmark``: adapter vs raw backend steps per second.

Prints a markdown table; ``--json PATH`` also writes the figures with their
provenance (versions, device, git commit).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ._benchmark import DEFAULT_NAMES as DEFAULT_NAMES
from ._benchmark import BenchmarkResult as BenchmarkResult
from ._benchmark import format_table as format_table
from ._benchmark import provenance as provenance
from ._benchmark import run_benchmark as run_benchmark


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark from the command line."""
    parser = argparse.ArgumentParser(prog="python -m rtrl_envs.benchmark")
    parser.add_argument("names", nargs="*", default=list(DEFAULT_NAMES))
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args(argv)
    results = run_benchmark(
        args.names,
        num_envs=args.num_envs,
        steps=args.steps,
        rounds=args.rounds,
        seed=args.seed,
    )
    print(format_table(results))
    if args.json:
        payload = {
            "results": [dataclasses.asdict(r) for r in results],
            "provenance": provenance(),
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
