"""The ``rtrl-bench`` command line.

Every error a user can cause ends in one line on stderr that says what to do,
with exit code 2 (``--debug`` shows the traceback instead); Ctrl-C ends with
exit code 130 and says how to resume.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import warnings
from pathlib import Path
from typing import cast

import numpy as np


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the usage block first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Help(argparse.HelpFormatter):
    """Shows an option's default unless it has none or its help names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" not in text
            and action.default not in (None, False, argparse.SUPPRESS, [])
            and action.option_strings
        ):
            default = action.default
            if isinstance(default, list | tuple):
                default = " ".join(
                    ",".join(map(str, d)) if isinstance(d, tuple) else str(d)
                    for d in default
                )
            text += f" (default: {default})"
        return text


def _keep(text: str) -> int:
    value = _count(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"{text!r}: keep at least 2, so that an unreadable newest checkpoint "
            "has a fallback"
        )
    return value


def _count(text: str) -> int:
    """A positive count, also written as ``1e6`` or ``2_000_000``."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number (write e.g. 3, 2000000 or 2e6)"
        ) from None
    if not (math.isfinite(value) and value.is_integer() and value >= 1):
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 1")
    return int(value)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number > 0")
    return value


def _sizes(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    try:
        sizes = tuple(_count(p) for p in parts)
    except argparse.ArgumentTypeError:
        sizes = ()
    if len(sizes) != 4:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be four whole numbers >= 1: N,D,T,B (e.g. 256,257,50,32)"
        )
    return sizes  # type: ignore[return-value]


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
    import rtrl_envs

    try:
        from rtrl_envs.benchmark import DEFAULT_NAMES, format_table, run_benchmark
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            f"rtrl-bench envs needs rtrl-envs with its backends ({e}): "
            "pip install 'rtrl-bench[envs]'"
        ) from None
    names = args.names or list(DEFAULT_NAMES)
    for name in names:  # unknown names and missing backends, before any timing
        rtrl_envs.check_backend(name)
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


def _workaround_choices() -> list[str]:
    import rtrl_cells as rc

    names = list(rc.Workarounds.names())
    return [*names, "+".join(names)]


def _speed(args: argparse.Namespace) -> int:
    from ._speed import (
        format_ab,
        format_memory,
        format_speed,
        memory_rows,
        time_methods,
    )

    configs = args.config
    ab = [name.split("+") for name in args.ab]
    rows = []
    for N, D, T, B in configs:
        for cell in args.cells:
            new = time_methods(cell, N, D, T, B, runs=args.runs, ab=ab)
            rows += new
            print(format_speed(new).splitlines()[-1], flush=True)
    print(
        "\nMedian time of one gradient of a batch-summed loss over one rollout "
        f"({args.runs} interleaved runs, float32, jitted; ratio to bptt):\n"
    )
    print(format_speed(rows))
    if ab:
        print(
            "\nEach engine workaround off, interleaved with the default engine "
            "(x default above 1: the workaround pays):\n"
        )
        print(format_ab(rows))
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


def _e2e(args: argparse.Namespace) -> int:
    from ._e2e import E2ESettings, format_e2e, run_e2e

    settings = E2ESettings(
        num_envs=args.num_envs,
        num_steps=args.num_steps,
        updates=args.updates,
        runs=args.runs,
        width=args.width,
        seed=args.seed,
    )
    rows = run_e2e(settings, args.systems, progress=lambda m: print(m, flush=True))
    print()
    print(format_e2e(rows, settings))
    _write_json(
        args.json,
        {
            "settings": dataclasses.asdict(settings),
            "e2e": [dataclasses.asdict(r) for r in rows],
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


def _cells_action(labels: list[str]) -> type[argparse.Action]:
    """``--cells``: example labels (``RTU(linear)``) or registry names (``rtu``:
    every example of that kind), in the order given."""
    import rtrl_cells as rc

    examples = rc.cell_examples()
    by_name: dict[str, list[str]] = {}
    for label in labels:
        if label in examples:
            by_name.setdefault(examples[label].kind.name, []).append(label)

    class CellsAction(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            chosen: list[str] = []
            for value in cast(list[str], values):  # nargs="+": a list of words
                if value in labels:
                    chosen.append(value)
                elif value.lower() in by_name:
                    chosen += by_name[value.lower()]
                else:
                    parser.error(
                        f"argument {option_string}: unknown cell {value!r}: give a "
                        f"registered name ({', '.join(by_name)}) or one of "
                        f"{', '.join(labels)}"
                    )
            setattr(namespace, self.dest, list(dict.fromkeys(chosen)))

    return CellsAction


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
        "--cells",
        nargs="+",
        action=_cells_action(examples),
        default=None,
        metavar="CELL",
        help="registered names (rtu: each of its option sets) or labels such as "
        "'RTU(linear)' or 'Stack(ELSTM,ELSTM)' (default: all)",
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
        action=_cells_action(list(CELLS)),
        default=list(CELLS),
        metavar="CELL",
        help="registered names or labels such as 'RTU(linear)' (default: every "
        "registered element-wise cell)",
    )
    p.add_argument(
        "--memory-cells",
        nargs="+",
        action=_cells_action(list(CELLS)),
        default=[CELLS[0]],
        metavar="CELL",
        help=f"cells of the memory table (default: {CELLS[0]})",
    )
    p = sub.choices["complexity"]
    for flag, dense, what in (
        ("--cell", False, "layer cell"),
        ("--dense-cell", True, "the dense-* methods' cell"),
    ):
        names = [k for k, v in rc.CELLS.items() if v.dense == dense]
        p.add_argument(flag, choices=names, default=None, help=what)


def _list(args: argparse.Namespace) -> int:
    from ._experiments import EXPERIMENTS

    print(f"{'experiment':38s} {'frames':>10s}  variants (the paper's budget)")
    for name, exp in EXPERIMENTS.items():
        arms = ", ".join(v.name for v in exp.variants)
        needs = f" [needs {exp.requires}]" if exp.requires else ""
        paper = (
            f" (paper: {exp.paper_frames:.3g} env frames)" if exp.paper_frames else ""
        )
        print(f"{name:38s} {exp.frames:>10,d}  {arms}{paper}{needs}")
        if args.verbose:
            print(f"    {exp.description}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from ._experiments import get_experiment
    from ._overrides import configure, configure_env, print_help
    from ._run import CheckpointPolicy, RayOptions, run_experiment

    prog = f"rtrl-bench run {args.name or 'NAME'}"
    if args.help:
        args.parser.print_help()
        if args.name:
            exp = get_experiment(args.name)
            print(
                f"\nEvery field of {exp.name}'s config can be set, in every variant "
                "it runs (--core.X, --torso.X, --heads.X stand for "
                "--agent.network.core.X, ...); defaults of its first variant:\n"
            )
            print_help(exp.variants[0].config, prog)
        return 0
    if not args.name:
        raise ValueError(
            "give an experiment: rtrl-bench run NAME (see rtrl-bench list)"
        )
    ray = None if args.ray is None else RayOptions(args.ray, args.actors)
    policy = CheckpointPolicy(
        every_updates=args.checkpoint_every,
        every_minutes=args.checkpoint_minutes,
        keep=args.keep_checkpoints,
    )
    exp = get_experiment(args.name)
    exp, variants = configure(
        exp,
        tuple(args.variants) if args.variants else None,
        list(args.overrides),
        args.config,
        prog,
    )
    exp = configure_env(exp, args.env_name, args.env_num_envs, args.env_option)
    results = run_experiment(
        exp,
        args.logdir,
        frames=args.frames,
        seeds=args.seeds,
        variants=variants,
        resume=args.resume,
        progress=not args.quiet,
        ray=ray,
        allow_config_change=args.allow_config_change,
        checkpoints=policy,
        eval_every=args.eval_every,
    )
    print(f"\n{exp.name}: greedy {exp.metric} on {exp.eval_episodes} held-out episodes")
    for r in results:
        print(f"  {r.variant:14s} seed {r.seed}: {r.score:.3f} ({r.frames} frames)")
    print(f"TensorBoard logs: {Path(args.logdir) / exp.name}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json

    from ._load import evaluate_run, load

    run = load(args.rundir, step=args.step)
    result = evaluate_run(
        run,
        episodes=args.episodes,
        greedy=not args.sample,
        seed=args.seed,
        video=args.video,
    )
    how = "greedy" if result.greedy else "sampled"
    print(
        f"{run.config.experiment}/{run.config.variant} seed {run.config.seed}, "
        f"checkpoint {run.step} of {run.config.num_updates} updates, on "
        f"{run.config.env.name} (held-out seed)"
    )
    returns = np.asarray(result.returns)
    print(
        f"{how} {result.metric} {result.score:.4g} over {len(returns)} episodes "
        f"(return mean {returns.mean():.4g}, min {returns.min():.4g}, max "
        f"{returns.max():.4g})"
    )
    stored = Path(args.rundir) / "result.json"
    if (
        stored.exists()
        and result.greedy
        and args.episodes is None
        and args.seed is None
    ):
        score = json.loads(stored.read_text()).get("score")
        print(f"result.json's greedy {result.metric}: {score}")
    if result.video:
        print(f"wrote {result.video}")
    return 0


def _memory(args: argparse.Namespace) -> int:
    from ._experiments import get_experiment
    from ._memory import format_table, measure_arm

    rows = []
    for name in args.experiments:
        exp = get_experiment(name)
        names = args.variants or [v.name for v in exp.variants]
        for variant in names:
            row = measure_arm(
                name,
                variant,
                updates=args.updates,
                cap_gb=args.cap_gb,
                checkout=args.checkout,
            )
            rows.append(row)
            print(format_table([row]).splitlines()[-1], flush=True)
    print(
        f"\nPeak resident memory of `rtrl-bench run` for {args.updates} update(s) per "
        f"arm, each in its own process (stopped above {args.cap_gb:g} GiB)"
        + (f", packages of {args.checkout}" if args.checkout else "")
        + ":\n"
    )
    print(format_table(rows))
    _write_json(args.json, {"rows": [dataclasses.asdict(r) for r in rows]})
    return 0 if all(r.status == "ok" for r in rows) else 1


def _scale(args: argparse.Namespace) -> int:
    from ._scale import format_table, run_scale

    rows = run_scale(
        args.experiment,
        args.variant,
        tuple(args.actors),
        updates=args.updates,
        address=args.ray,
        seed=args.seed,
    )
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

    paths = write_report(args.dir, args.out)
    print(paths["markdown"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rtrl-bench",
        allow_abbrev=False,
        description="Benchmarks and studies of exact real-time recurrent learning.",
        formatter_class=_Help,
    )
    from . import __version__

    parser.add_argument(
        "--version", action="version", version=f"rtrl-bench {__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", help="show tracebacks instead of one line"
    )

    def add(name: str, **kw):
        return sub.add_parser(
            name,
            parents=[common],
            allow_abbrev=False,
            formatter_class=_Help,
            **kw,
        )

    p = add("gradcheck", help="RTRL gradients of every cell vs full BPTT")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="PRNG seed")
    p.add_argument("--segments", type=_count, default=3, help="segments per check")
    p.add_argument("--length", type=_count, default=6, help="steps per segment")
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=_gradcheck)

    p = add("speed", help="time and memory of bptt, chunked and online")
    p.add_argument(
        "--config",
        nargs="+",
        type=_sizes,
        default=[(256, 257, 50, 32), (512, 257, 100, 32)],
        help="N,D,T,B sizes to time",
    )
    p.add_argument("--runs", type=_count, default=7, help="timed runs per method")
    p.add_argument(
        "--ab",
        nargs="*",
        default=[],
        choices=_workaround_choices(),
        metavar="SWITCH",
        help="also time every method with this engine workaround off, interleaved "
        "with the default (names of rtrl_cells.Workarounds, or several joined by "
        f"'+'; one of: {', '.join(_workaround_choices())})",
    )
    p.add_argument(
        "--memory-lengths",
        nargs="*",
        type=_count,
        default=[10, 100, 1000],
        help="rollout lengths T for the memory table (N, D, B of the first config)",
    )
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=_speed)

    p = add(
        "e2e",
        help="whole jitted training runs: our agents vs PureJaxRL's PPO-RNN",
        description="Times whole jitted training runs (acting, environment, "
        "learning) of PureJaxRL's PPO-RNN, re-written here, and of this project's "
        "PPO and R2AC with GRU/eLSTM/RTU cores on gymnax MemoryChain-bsuite, "
        "interleaved; steps per second, ratio to PureJaxRL, XLA memory.",
    )
    from ._e2e import SYSTEMS

    p.add_argument(
        "--systems",
        nargs="+",
        choices=SYSTEMS,
        default=list(SYSTEMS),
        metavar="SYSTEM",
        help=f"systems to time ({', '.join(SYSTEMS)})",
    )
    p.add_argument("--num-envs", type=_count, default=16, help="parallel envs")
    p.add_argument("--num-steps", type=_count, default=128, help="rollout length")
    p.add_argument("--updates", type=_count, default=16, help="updates per timed call")
    p.add_argument("--runs", type=_count, default=5, help="timed calls per system")
    p.add_argument(
        "--width",
        type=_positive_float,
        default=1.0,
        help="scale every width by this (1: the comparison's ~99k-parameter cores)",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0, help="PRNG seed")
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=_e2e)

    p = add("envs", help="environment adapters vs raw backends, steps/s")
    p.add_argument(
        "names", nargs="*", help="environment names (default: one of each family)"
    )
    p.add_argument("--num-envs", type=_count, default=8, help="streams per env")
    p.add_argument("--steps", type=_count, default=500, help="calls per timed round")
    p.add_argument("--rounds", type=_count, default=7, help="interleaved rounds")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="PRNG seed")
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=_envs)

    p = add("complexity", help="time and trace memory of multi-layer RTRL vs width")
    p.add_argument("--out", default="bench-results/complexity", help="report folder")
    p.add_argument("--full", action="store_true", help="time every configuration")
    p.add_argument("--widths", type=_count, nargs="+", default=None, help="N")
    p.add_argument("--steps", type=_count, default=None, help="rollout length T")
    p.add_argument(
        "--stream-steps", type=_count, default=None, help="T of the *-step methods"
    )
    p.add_argument("--batch", type=_count, default=None, help="streams B")
    p.add_argument("--rounds", type=_count, default=None, help="timed runs")
    p.add_argument(
        "--budget-gb", type=_positive_float, default=None, help="skip configs above"
    )
    p.add_argument("--seed", type=_non_negative_int, default=None, help="PRNG seed")
    p.set_defaults(func=_complexity)

    p = add("list", help="the registered experiments")
    p.add_argument("-v", "--verbose", action="store_true", help="with descriptions")
    p.set_defaults(func=_list)

    p = add(
        "run",
        add_help=False,
        help="run a registered experiment at any frame budget",
        description="Runs every variant of a registered experiment, for each seed. "
        "Besides the options below, every field of the experiment's config can be "
        "set: --agent.learning-rate 1e-3 --core.hidden-size 64 (`rtrl-bench run "
        "NAME --help` lists them with their defaults); the run's config.json "
        "records the result.",
    )
    p.add_argument(
        "-h",
        "--help",
        action="store_true",
        help="show this help (and, with NAME, "
        "every config field of that experiment) and exit",
    )
    p.add_argument("name", nargs="?", help="an experiment from `rtrl-bench list`")
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="start from the config of another run (its config.json) instead of "
        "the registry's; without --variants, that run's variant",
    )
    p.add_argument(
        "--env.name",
        dest="env_name",
        metavar="NAME",
        default=None,
        help="run on another rtrl-envs environment (e.g. gymnax/Acrobot-v1; "
        "`rtrl-bench run gymnax --env.name ...` runs any gymnax id; default: the "
        "experiment's)",
    )
    p.add_argument(
        "--env.num-envs",
        dest="env_num_envs",
        type=_count,
        default=None,
        metavar="N",
        help="parallel streams (default: the experiment's)",
    )
    p.add_argument(
        "--env.option",
        dest="env_option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment option, repeatable (gymnax: any EnvParams field, "
        "e.g. memory_length=20); values are JSON (default: the experiment's)",
    )
    p.add_argument(
        "--frames",
        type=_count,
        default=None,
        help="budget per variant and seed in agent steps summed over streams (e.g. "
        "2e6), rounded up to whole reports; default: the experiment's (see "
        "`rtrl-bench list`)",
    )
    p.add_argument("--seeds", type=_count, default=1, help="seeds 0 .. K-1")
    p.add_argument(
        "--logdir", default="runs", help="runs go to LOGDIR/NAME/VARIANT/seed<K>"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue runs in LOGDIR from their last checkpoint and skip finished "
        "ones (without it, a folder that holds a run is refused)",
    )
    p.add_argument(
        "--allow-config-change",
        action="store_true",
        help="with --resume: continue runs made with other settings (e.g. more "
        "--frames) under the new ones; R2AC's step size then follows the new "
        "linear decay from the resumed update",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        default=None,
        help="run these variants only (default: all; `rtrl-bench list` names them)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--checkpoint-every",
        type=_count,
        default=None,
        metavar="UPDATES",
        help="checkpoint every this many updates (default: every 10th report)",
    )
    p.add_argument(
        "--checkpoint-minutes",
        type=_positive_float,
        default=5.0,
        help="also checkpoint when this many minutes passed since the last one",
    )
    p.add_argument(
        "--keep-checkpoints",
        type=_keep,
        default=3,
        help="how many of the latest checkpoints to keep (>= 2)",
    )
    p.add_argument(
        "--eval-every",
        type=_count,
        default=None,
        metavar="UPDATES",
        help="also evaluate greedily on the held-out environments every this many "
        "updates during training (TensorBoard eval/<metric>; rounded to reports; "
        "default: only at the end)",
    )
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="train on Ray actors: a cluster address or 'local' (default: no Ray, "
        "one process)",
    )
    p.add_argument(
        "--actors",
        type=_count,
        default=2,
        help="with --ray: Ray actors; they split the experiment's streams",
    )
    p.set_defaults(func=_run, parser=p)

    p = add("eval", help="play a trained run from its folder; print returns")
    p.add_argument("rundir", help="a run folder: LOGDIR/NAME/VARIANT/seed<K>")
    p.add_argument(
        "--episodes",
        type=_count,
        default=None,
        help="episodes to play (default: the run's evaluation episodes)",
    )
    p.add_argument(
        "--sample",
        action="store_true",
        help="sample actions from the policy (default: greedy, its mode)",
    )
    p.add_argument(
        "--seed",
        type=_non_negative_int,
        default=None,
        help="evaluation key seed (default: the one `run` scored with)",
    )
    p.add_argument(
        "--step",
        type=_count,
        default=None,
        help="the checkpoint's update number, as in DIR/ckpt (default: newest)",
    )
    p.add_argument(
        "--video",
        metavar="FILE",
        default=None,
        help="film stream 0 to FILE.mp4 or FILE.gif (pixel environments; needs "
        "rtrl-bench[video])",
    )
    p.set_defaults(func=_eval)

    p = add("memory", help="peak memory of experiment arms, each in its own process")
    p.add_argument("experiments", nargs="+", help="registered experiment names")
    p.add_argument(
        "--variants", nargs="+", default=None, help="arms to measure (default: all)"
    )
    p.add_argument("--updates", type=_count, default=1, help="updates per arm")
    p.add_argument(
        "--cap-gb",
        type=_positive_float,
        default=8.0,
        help="stop an arm whose resident memory passes this (GiB)",
    )
    p.add_argument(
        "--checkout",
        default=None,
        help="measure the packages of another checkout of this repository",
    )
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=_memory)

    p = add("scale", help="R2AC frames/s: single machine vs 1, 2, ... Ray actors")
    p.add_argument("--experiment", default="horizon", help="an R2AC experiment")
    p.add_argument("--variant", default="rtrl", help="the variant to train")
    p.add_argument(
        "--actors", type=_count, nargs="+", default=[1, 2], help="Ray actor counts"
    )
    p.add_argument("--updates", type=_count, default=600, help="updates per mode")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        default="local",
        help="the Ray cluster, or 'local' for a one-machine cluster",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0, help="PRNG seed")
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=_scale)

    p = add("report", help="markdown tables and PNG curves of runs")
    p.add_argument("dir", help="a --logdir of `rtrl-bench run`")
    p.add_argument(
        "--out", default=None, help="the markdown file (default: DIR/report.md)"
    )
    p.set_defaults(func=_report)
    _add_registry_options(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user can cause: reported in one line, not a traceback."""
    import rtrl_agents as ra

    from ._experiments import UnknownExperimentError
    from ._run import BackendMissingError

    return (
        ValueError,  # bad values, unknown names, config mismatches
        OSError,  # missing or unwritable files and folders, existing runs
        ImportError,  # a missing optional backend
        BackendMissingError,
        UnknownExperimentError,
        ra.RunInUseError,
        ra.CheckpointNotReadableError,
        ra.NonFiniteError,
    )


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 600 else text[:597] + "..."


def main(argv: list[str] | None = None) -> int:
    """Runs ``rtrl-bench`` with ``argv``; returns the exit code."""
    from ._provenance import command_line

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    prog = f"rtrl-bench {args.command}"

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {_one_line(message)}", file=sys.stderr)

    with warnings.catch_warnings():
        if not args.debug:
            warnings.showwarning = show
        try:
            with command_line(["rtrl-bench", *argv]):
                return args.func(args)
        except KeyboardInterrupt:
            if args.debug:
                raise
            hint = " (--resume continues from the last checkpoint)"
            print(
                f"{prog}: interrupted{hint if args.command == 'run' else ''}",
                file=sys.stderr,
            )
            return 130
        except _user_errors() as e:
            if args.debug:
                raise
            print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
