"""Throughput of the distributed R2AC against the single-machine loop.

``rtrl-bench scale`` trains one R2AC variant of a registered experiment three
ways in one run, on the same task, streams and batch shape:

* ``single``: the single-machine loop (:func:`rtrl_agents.train`: the jitted
  scan for pure JAX environments, the host loop otherwise);
* ``ray xN``: :func:`rtrl_agents.train_distributed` with N Ray actors that split
  the streams between them (the learner takes one rollout from each).

It reports frames per second (the median over the reports after the first, so
compilation is left out), the learner's share of the wall time and the mean
policy lag, as a markdown table and JSON.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from typing import Any


@dataclasses.dataclass(frozen=True)
class ScaleRow:
    """One configuration's throughput.

    Attributes:
        mode: ``"single"`` or ``"ray x<N>"``.
        actors: Ray actors (0 for the single-machine loop).
        fps: median frames per second over the timed reports.
        learner_share: fraction of wall time the learner spent in updates
            (``nan`` for the single-machine loop, where acting and learning
            alternate in one process).
        policy_lag: mean updates between acting and learning parameters.
        updates: updates run (the first report is not timed).
    """

    mode: str
    actors: int
    fps: float
    learner_share: float
    policy_lag: float
    updates: int


def _median(history: list[dict[str, float]], key: str) -> float:
    values = [h[key] for h in history[1:] if key in h] or [
        h[key] for h in history if key in h
    ]
    return float(statistics.median(values)) if values else float("nan")


def run_scale(
    experiment: str = "horizon",
    variant: str = "rtrl",
    actors: tuple[int, ...] = (1, 2),
    updates: int = 600,
    reports: int = 6,
    address: str = "local",
    seed: int = 0,
) -> list[ScaleRow]:
    """Measures the single-machine loop and each actor count, in that order.

    Args:
        experiment: a registered experiment with R2AC variants.
        variant: one of its variants.
        actors: the actor counts to measure (each must divide the streams).
        updates: learner updates per configuration.
        reports: reports per configuration (the first is not timed).
        address: the Ray cluster, or ``"local"`` for a one-machine cluster
            (started once, with actors at the learner's priority).
        seed: the seed.
    """
    import jax

    import rtrl_agents as ra

    from ._experiments import get_experiment
    from ._run import RayOptions, distributed_setup, make_env

    exp = get_experiment(experiment)
    var = exp.variant(variant)
    if not isinstance(var.config, ra.R2ACConfig):
        raise ValueError(
            f"scale measures R2AC's throughput; {experiment}/{variant} is "
            f"{type(var.config).__name__}: give an R2AC experiment (horizon, "
            "atari-*, procgen-*, gymnax-*)."
        )
    for n in actors:
        distributed_setup(exp, var, RayOptions(address, n))  # fail early
    log_every = max(1, updates // reports)
    loop = ra.LoopConfig(num_updates=log_every * reports, log_every=log_every)
    config = dataclasses.replace(var.config, decay_updates=loop.num_updates)
    rows = []
    env = make_env(exp.env, seed)
    agent = ra.r2ac(config, env.spec)
    single = ra.train(agent, env, jax.random.PRNGKey(seed), loop)
    rows.append(
        ScaleRow(
            "single",
            0,
            _median(single.history, "fps"),
            float("nan"),
            0.0,
            loop.num_updates,
        )
    )
    del env
    ray = _ray(address)
    try:
        for n in actors:
            env_fn, dist = distributed_setup(exp, var, RayOptions(address, n))
            out = ra.train_distributed(
                config, env_fn, jax.random.PRNGKey(seed), loop, dist, seed=seed
            )
            h = out.history
            rows.append(
                ScaleRow(
                    f"ray x{n}",
                    n,
                    _median(h, "fps"),
                    _median(h, "learner_share"),
                    _median(h, "policy_lag"),
                    loop.num_updates,
                )
            )
    finally:
        ray.shutdown()
    return rows


def _ray(address: str) -> Any:
    try:
        import ray
    except ImportError as e:  # pragma: no cover - depends on the install
        raise SystemExit(
            "rtrl-bench scale needs Ray: pip install 'rtrl-agents[ray]'"
        ) from e
    if address == "local":
        # Ray nices its workers to 15; on a small machine that starves the
        # actors next to the learner, so the local cluster runs them at 0.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(configure_logging=False)
    else:
        ray.init(address=address, configure_logging=False)
    return ray


def format_table(rows: list[ScaleRow]) -> str:
    """The rows as a markdown table, with the speed-up over ``single``."""
    base = rows[0].fps if rows and rows[0].fps > 0 else float("nan")
    lines = [
        "| mode | actors | frames/s | vs single | learner share | policy lag |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        share = "-" if r.learner_share != r.learner_share else f"{r.learner_share:.2f}"
        lines.append(
            f"| {r.mode} | {r.actors} | {r.fps:,.0f} | {r.fps / base:.2f}x | "
            f"{share} | {r.policy_lag:.2f} |"
        )
    return "\n".join(lines)
