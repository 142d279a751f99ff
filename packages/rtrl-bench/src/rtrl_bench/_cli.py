"""The ``rtrl-bench`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path


def _write_json(path: str | None, payload: dict) -> None:
    if path is None:
        return
    from ._provenance import provenance

    payload = {**payload, "provenance": provenance()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")


def _gradcheck(args: argparse.Namespace) -> int:
    from ._gradcheck import THRESHOLD, format_table, run_gradcheck

    rows = run_gradcheck(seed=args.seed, segments=args.segments, length=args.length)
    print(
        "Max relative error of the RTRL parameter gradient against full BPTT "
        f"(float64; {args.segments} segments of {args.length} steps, carries passed "
        "across calls, a reset inside the second):\n"
    )
    print(format_table(rows))
    bad = [r for r in rows if not r.ok]
    _write_json(
        args.json,
        {"threshold": THRESHOLD, "rows": [dataclasses.asdict(r) for r in rows]},
    )
    if bad:
        print(f"\nFAILED: {len(bad)} check(s) above {THRESHOLD:g}.", file=sys.stderr)
        return 1
    print(f"\nAll {len(rows)} checks within {THRESHOLD:g}.")
    return 0


def _envs(args: argparse.Namespace) -> int:
    try:
        from rtrl_envs.benchmark import DEFAULT_NAMES, format_table, run_benchmark
    except ImportError as e:  # pragma: no cover - depends on the install
        raise SystemExit(
            f"rtrl-bench envs needs rtrl-envs with its backends ({e}): "
            "pip install 'rtrl-bench[envs]'"
        ) from None
    names = args.names or list(DEFAULT_NAMES)
    results = run_benchmark(
        names,
        num_envs=args.num_envs,
        steps=args.steps,
        rounds=args.rounds,
        seed=args.seed,
    )
    print(format_table(results))
    _write_json(args.json, {"results": [dataclasses.asdict(r) for r in results]})
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtrl-bench",
        description="Benchmarks and studies of exact real-time recurrent learning.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("gradcheck", help="RTRL gradients of every cell vs full BPTT")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--segments", type=int, default=3)
    p.add_argument("--length", type=int, default=6)
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=_gradcheck)

    p = sub.add_parser("envs", help="environment adapters vs raw backends, steps/s")
    p.add_argument("names", nargs="*", help="environment names (default: a set)")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--steps", type=int, default=500, help="calls per timed round")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=_envs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
