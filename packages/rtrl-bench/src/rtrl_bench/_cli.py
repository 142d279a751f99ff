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

    rows = run_gradcheck(
        seed=args.seed,
        methods=args.methods,
        segments=args.segments,
        length=args.length,
        cells=args.cells,
    )
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


def _speed(args: argparse.Namespace) -> int:
    from ._speed import (
        format_memory,
        format_speed,
        memory_rows,
        time_methods,
    )

    configs = [tuple(int(v) for v in c.split(",")) for c in args.config]
    rows = []
    for N, D, T, B in configs:
        for cell in args.cells:
            new = time_methods(cell, N, D, T, B, runs=args.runs)
            rows += new
            print(format_speed(new).splitlines()[-1], flush=True)
    print(
        "\nMedian time of one gradient of a batch-summed loss over one rollout "
        f"({args.runs} interleaved runs, float32, jitted; ratio to bptt):\n"
    )
    print(format_speed(rows))
    mem = []
    if args.memory_lengths:
        N, D, _, B = configs[0]
        for cell in args.memory_cells:
            mem += memory_rows(cell, N, D, B, args.memory_lengths)
        print("\nWorking memory (compiled temporaries + outputs; inputs excluded):\n")
        print(format_memory(mem))
    _write_json(
        args.json,
        {
            "speed": [dataclasses.asdict(r) for r in rows],
            "memory": [dataclasses.asdict(r) for r in mem],
        },
    )
    return 0


def _complexity(args: argparse.Namespace) -> int:
    from ._complexity import (
        FULL_ENTRIES,
        ComplexityConfig,
        format_fits,
        format_table,
        run_complexity,
        write_report,
    )

    kw = {}
    if args.full:
        kw["entries"] = FULL_ENTRIES
    names = (
        "widths",
        "steps",
        "stream_steps",
        "batch",
        "rounds",
        "budget_gb",
        "seed",
        "cell",
        "dense_cell",
    )
    for name in names:
        value = getattr(args, name)
        if value is not None:
            kw[name] = tuple(value) if name == "widths" else value
    result = run_complexity(ComplexityConfig(**kw))
    print(format_table(result))
    print()
    print(format_fits(result))
    paths = write_report(result, args.out)
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    print(f"study took {result.seconds:.0f} s")
    return 0


def _add_registry_options(sub: argparse._SubParsersAction) -> None:
    """The options that name cells and methods, whose choices are rtrl-cells'.

    Built from the registries when the parser is: a cell registered with
    ``rtrl_cells.register_cell`` or a new gradient method appears here without
    an edit.
    """
    import jax

    import rtrl_cells as rc

    from ._gradcheck import exact_methods
    from ._speed import CELLS

    p = sub.choices["gradcheck"]
    examples = list(rc.example_cells(jax.random.PRNGKey(0)))
    p.add_argument(
        "--cells", nargs="+", choices=examples, default=None, help="default: all"
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=exact_methods(),
        default=None,
        help="default: every exact method",
    )
    p = sub.choices["speed"]
    p.add_argument(
        "--cells",
        nargs="+",
        choices=CELLS,
        default=list(CELLS),
        help="default: every registered element-wise cell",
    )
    p.add_argument("--memory-cells", nargs="+", choices=CELLS, default=[CELLS[0]])
    p = sub.choices["complexity"]
    for flag, dense, what in (
        ("--cell", False, "layer cell"),
        ("--dense-cell", True, "the dense-* methods' cell"),
    ):
        names = [k for k, v in rc.CELLS.items() if v.dense == dense]
        p.add_argument(flag, choices=names, default=None, help=what)


def _list(args: argparse.Namespace) -> int:
    from ._experiments import EXPERIMENTS

    for name, exp in EXPERIMENTS.items():
        arms = ", ".join(v.name for v in exp.variants)
        needs = f" [needs {exp.requires}]" if exp.requires else ""
        print(f"{name:38s} {exp.frames:>10,d} frames  {arms}{needs}")
        if args.verbose:
            print(f"    {exp.description}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from ._experiments import UnknownExperimentError, get_experiment
    from ._run import BackendMissingError, RayOptions, run_experiment

    ray = None if args.ray is None else RayOptions(args.ray, args.actors)
    try:
        exp = get_experiment(args.name)
        results = run_experiment(
            exp,
            args.logdir,
            frames=args.frames,
            seeds=args.seeds,
            variants=tuple(args.variants) if args.variants else None,
            resume=args.resume,
            progress=not args.quiet,
            ray=ray,
        )
    except (UnknownExperimentError, BackendMissingError, ValueError) as e:
        print(f"rtrl-bench run: {e}", file=sys.stderr)
        return 2
    print(f"\n{exp.name}: greedy {exp.metric} on {exp.eval_episodes} held-out episodes")
    for r in results:
        print(f"  {r.variant:14s} seed {r.seed}: {r.score:.3f} ({r.frames} frames)")
    print(f"TensorBoard logs: {Path(args.logdir) / exp.name}")
    return 0


def _scale(args: argparse.Namespace) -> int:
    from ._experiments import UnknownExperimentError
    from ._scale import format_table, run_scale

    try:
        rows = run_scale(
            args.experiment,
            args.variant,
            tuple(args.actors),
            updates=args.updates,
            address=args.ray,
            seed=args.seed,
        )
    except (UnknownExperimentError, ValueError) as e:
        print(f"rtrl-bench scale: {e}", file=sys.stderr)
        return 2
    print(
        f"\nR2AC throughput, {args.experiment}/{args.variant}, {args.updates} "
        "updates each (median over reports after the first):\n"
    )
    print(format_table(rows))
    _write_json(
        args.json,
        {
            "experiment": args.experiment,
            "variant": args.variant,
            "rows": [dataclasses.asdict(r) for r in rows],
        },
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from ._report import write_report

    try:
        paths = write_report(args.dir, args.out)
    except FileNotFoundError as e:
        print(f"rtrl-bench report: {e}", file=sys.stderr)
        return 2
    print(paths["markdown"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
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

    p = sub.add_parser("speed", help="time and memory of bptt, chunked and online")
    p.add_argument(
        "--config",
        nargs="+",
        default=["256,257,50,32", "512,257,100,32"],
        help="N,D,T,B sizes to time",
    )
    p.add_argument("--runs", type=int, default=7, help="timed runs per method")
    p.add_argument(
        "--memory-lengths",
        nargs="*",
        type=int,
        default=[10, 100, 1000],
        help="rollout lengths T for the memory table (N, D, B of the first config)",
    )
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=_speed)

    p = sub.add_parser("envs", help="environment adapters vs raw backends, steps/s")
    p.add_argument("names", nargs="*", help="environment names (default: a set)")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--steps", type=int, default=500, help="calls per timed round")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=_envs)

    p = sub.add_parser(
        "complexity", help="time and trace memory of multi-layer RTRL vs width"
    )
    p.add_argument("--out", default="bench-results/complexity", help="report folder")
    p.add_argument("--full", action="store_true", help="time every configuration")
    p.add_argument("--widths", type=int, nargs="+", default=None)
    p.add_argument("--steps", type=int, default=None, help="rollout length T")
    p.add_argument(
        "--stream-steps", type=int, default=None, help="T of the *-step methods"
    )
    p.add_argument("--batch", type=int, default=None, help="streams B")
    p.add_argument("--rounds", type=int, default=None, help="timed runs")
    p.add_argument(
        "--budget-gb", type=float, default=None, help="skip configs above this"
    )
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=_complexity)

    p = sub.add_parser("list", help="the registered experiments")
    p.add_argument("-v", "--verbose", action="store_true", help="with descriptions")
    p.set_defaults(func=_list)

    p = sub.add_parser("run", help="run a registered experiment at any frame budget")
    p.add_argument("name", help="an experiment from `rtrl-bench list`")
    p.add_argument(
        "--frames", type=int, default=None, help="budget per variant and seed"
    )
    p.add_argument("--seeds", type=int, default=1, help="seeds 0 .. K-1")
    p.add_argument("--logdir", default="runs", help="TensorBoard logs, checkpoints")
    p.add_argument("--resume", action="store_true", help="continue, skip finished")
    p.add_argument("--variants", nargs="+", default=None, help="a subset of variants")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="train R2AC on Ray actors: a cluster address or 'local'",
    )
    p.add_argument("--actors", type=int, default=2, help="Ray actors (with --ray)")
    p.set_defaults(func=_run)

    p = sub.add_parser(
        "scale", help="R2AC frames/s: single machine vs 1, 2, ... Ray actors"
    )
    p.add_argument("--experiment", default="horizon", help="an R2AC experiment")
    p.add_argument("--variant", default="rtrl")
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    p.add_argument("--updates", type=int, default=600, help="updates per mode")
    p.add_argument("--ray", metavar="ADDRESS", default="local")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=_scale)

    p = sub.add_parser("report", help="markdown tables and PNG curves of runs")
    p.add_argument("dir", help="a --logdir of `rtrl-bench run`")
    p.add_argument("--out", default=None, help="markdown file (default DIR/report.md)")
    p.set_defaults(func=_report)
    _add_registry_options(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
