"""Running a registered experiment: every variant x seed, logged, checkpointed.

Layout under the log folder::

    LOGDIR/NAME/VARIANT/seed<K>/
        events.out.tfevents.*   TensorBoard scalars (train/episode_return, ...)
        metrics.jsonl           the same records, one per report
        ckpt/                   orbax checkpoints (parameters, optimizer, carries)
        result.json             final greedy evaluation, budget, curve, provenance
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._experiments import Experiment, SequenceConfig, Variant

RESULT_FILE = "result.json"


class BackendMissingError(RuntimeError):
    """The experiment needs a simulator that is not installed here."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    """The outcome of one variant and seed.

    Attributes:
        experiment: the experiment's name.
        variant: the variant's name.
        seed: the training seed.
        frames: agent steps summed over streams that the run trained on.
        env_frames: ``frames x action_repeat``, comparable with the paper's budget.
        updates: learner updates.
        metric: what ``score`` measures (``"success"``, ``"return"``, ...).
        score: the final greedy evaluation on held-out episodes.
        eval_episodes: episodes (or batches) behind ``score``.
        train_score: the mean training episode return over the last tenth of the
            reports (sampled actions), or ``nan`` if no episode ended.
        seconds: wall-clock time of training and evaluation.
        path: the run's folder.
    """

    experiment: str
    variant: str
    seed: int
    frames: int
    env_frames: int
    updates: int
    metric: str
    score: float
    eval_episodes: int
    train_score: float
    seconds: float
    path: str


def _schedule(frames: int, per_update: int) -> tuple[int, int, int]:
    """``(num_updates, log_every, checkpoint_every)`` for a frame budget.

    About 100 reports and 4 checkpoints; ``num_updates`` is rounded up so that
    every device call has the same length (one compilation) and the last
    update is checkpointed.
    """
    raw = max(1, math.ceil(frames / per_update))
    log_every = max(1, min(500, raw // 100))
    chunks = math.ceil(raw / log_every)
    ckpt_chunks = max(1, math.ceil(chunks / 4))
    chunks = math.ceil(chunks / ckpt_chunks) * ckpt_chunks
    return chunks * log_every, log_every, ckpt_chunks * log_every


def _check_backend(exp: Experiment) -> None:
    if exp.requires and importlib.util.find_spec(exp.requires) is None:
        raise BackendMissingError(
            f"experiment {exp.name!r} needs the {exp.requires!r} module, which is "
            "not installed here (DeepMind Lab is not on PyPI: build it from "
            "https://github.com/google-deepmind/lab and pip install the wheel)."
        )


def _make_env(exp: Experiment, seed: int, evaluation: bool = False):
    import rtrl_envs

    options = dict(exp.env.options)
    if evaluation and exp.env.eval_options:
        options = dict(exp.env.eval_options)
    return rtrl_envs.make(exp.env.name, num_envs=exp.env.num_envs, seed=seed, **options)


def make_actor_env(name: str, num_envs: int, options: tuple, seed: int):
    """One Ray actor's environments (module-level, so actors import it by name)."""
    import rtrl_envs

    return rtrl_envs.make(name, num_envs=num_envs, seed=seed, **dict(options))


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """Run R2AC experiments on Ray actors (``rtrl-bench run --ray ADDRESS``).

    Attributes:
        address: the cluster (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``)
            or ``"local"`` to start a one-machine cluster.
        actors: Ray actors; the experiment's streams are split between them and
            the learner's batch takes one rollout from each, so a distributed run
            trains on the same batch shape as the single-machine one.
    """

    address: str = "local"
    actors: int = 2


def distributed_setup(exp: Experiment, variant: Variant, ray: RayOptions):
    """``(env_fn, DistributedConfig)`` for an R2AC variant on ``ray.actors``
    actors; a one-line ``ValueError`` when the variant cannot run there."""
    import functools

    import rtrl_agents as ra

    if not isinstance(variant.config, ra.R2ACConfig):
        raise ValueError(
            f"--ray runs R2AC experiments only; {exp.name}/{variant.name} uses "
            f"{type(variant.config).__name__}."
        )
    if ray.actors < 1 or exp.env.num_envs % ray.actors:
        raise ValueError(
            f"--actors {ray.actors} must divide {exp.name}'s {exp.env.num_envs} "
            "streams."
        )
    per_actor = exp.env.num_envs // ray.actors
    env_fn = functools.partial(
        make_actor_env, exp.env.name, per_actor, tuple(exp.env.options)
    )
    dist = ra.DistributedConfig(num_actors=ray.actors, rollouts_per_update=ray.actors)
    return env_fn, dist


def _make_agent(variant: Variant, spec: Any, num_updates: int):
    import rtrl_agents as ra

    cfg = variant.config
    if isinstance(cfg, ra.R2ACConfig):
        return ra.R2AC(dataclasses.replace(cfg, decay_updates=num_updates), spec)
    if isinstance(cfg, ra.PPOConfig):
        return ra.PPO(cfg, spec)
    if isinstance(cfg, ra.StreamingACConfig):
        return ra.StreamingAC(cfg, spec)
    raise TypeError(f"no agent for {type(cfg).__name__}")


def evaluate_greedy(agent, state, env, key, episodes: int, max_steps: int = 100_000):
    """Greedy actions (the policy's mode) until ``episodes`` episodes have ended.

    Args:
        agent: the trained agent.
        state: its ``AgentState``.
        env: a fresh environment (held-out seed or levels).
        key: PRNG key (the actor's key; unused by greedy actions).
        episodes: how many finished episodes to return.
        max_steps: give up after this many steps (continuing tasks).

    Returns:
        The returns of the first ``episodes`` episodes that ended (fewer if
        ``max_steps`` ran out first).
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    act = eqx.filter_jit(agent.act)
    step = jax.jit(env.step) if getattr(env.spec, "is_jax", False) else env.step
    k_env, key = jax.random.split(key)
    env_state, ts = env.reset(k_env)
    carry = agent.initial_carry(state)
    ret = np.zeros(env.spec.num_envs)
    done: list[float] = []
    for _ in range(max_steps):
        key, k = jax.random.split(key)
        ts_j = jax.tree.map(jnp.asarray, ts)
        action, carry, _ = act(state, carry, ts_j, k, greedy=True)
        env_state, ts = step(
            env_state, action if env.spec.is_jax else np.asarray(action)
        )
        first = np.asarray(ts.first)
        ret = np.where(first, 0.0, ret + np.asarray(ts.reward, np.float64))
        last = np.asarray(ts.terminated) | np.asarray(ts.truncated)
        done.extend(ret[last].tolist())
        if len(done) >= episodes:
            break
    return done[:episodes]


def _score(metric: str, returns: list[float]) -> float:
    if not returns:
        return float("nan")
    r = np.asarray(returns)
    return float(np.mean(r > 0)) if metric == "success" else float(np.mean(r))


def _train_score(history: list[dict[str, float]]) -> float:
    tail = [h for h in history[-max(1, len(history) // 10) :] if "episode_return" in h]
    if not tail:
        return float("nan")
    return float(np.mean([h["episode_return"] for h in tail]))


def _history(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def run_variant(
    exp: Experiment,
    variant: Variant,
    seed: int,
    run_dir: Path,
    frames: int,
    *,
    resume: bool = False,
    progress: bool = True,
    ray: RayOptions | None = None,
) -> RunResult:
    """Trains and evaluates one variant with one seed (see the module docstring);
    with ``ray``, R2AC trains on Ray actors (:func:`rtrl_agents.train_distributed`).
    """
    import jax

    import rtrl_agents as ra

    from ._provenance import provenance

    result_path = run_dir / RESULT_FILE
    if resume and result_path.exists():
        data = json.loads(result_path.read_text())
        if data["requested_frames"] == frames:
            fields = {f.name for f in dataclasses.fields(RunResult)}
            return RunResult(**{k: v for k, v in data.items() if k in fields})
    if not resume and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if isinstance(variant.config, SequenceConfig):
        from ._sequence import run_sequence

        out = run_sequence(variant.config, exp, seed, run_dir, frames, progress)
        updates, done_frames, score, train_score, n_eval, curve = out
    else:
        # Distributed runs build no training environments here (actors do);
        # the held-out evaluation environment gives the spec instead.
        eval_env = _make_env(exp, seed + 1_000_003, evaluation=True)
        env = _make_env(exp, seed) if ray is None else eval_env
        per_update = variant.steps_per_update * exp.env.num_envs
        num_updates, log_every, ckpt_every = _schedule(frames, per_update)
        agent = _make_agent(variant, env.spec, num_updates)
        loop = ra.LoopConfig(
            num_updates=num_updates,
            log_every=log_every,
            checkpoint_every=ckpt_every,
            keep_checkpoints=1,
        )
        common = dict(
            log_dir=str(run_dir),
            checkpoint_dir=str(run_dir / "ckpt"),
            progress=progress,
            resume=resume,
        )
        if ray is None:
            trained = ra.train(agent, env, jax.random.PRNGKey(seed), loop, **common)
        else:
            env_fn, dist = distributed_setup(exp, variant, ray)
            trained = ra.train_distributed(
                agent.config,
                env_fn,
                jax.random.PRNGKey(seed),
                loop,
                dist,
                address=None if ray.address == "local" else ray.address,
                seed=seed,
                **common,
            )
        state = trained.state.agent
        returns = evaluate_greedy(
            agent, state, eval_env, jax.random.PRNGKey(seed + 1), exp.eval_episodes
        )
        updates, done_frames = num_updates, num_updates * per_update
        score, n_eval = _score(exp.metric, returns), len(returns)
        history = _history(run_dir)
        train_score = _train_score(history)
        curve = [
            [h["step"], h["episode_return"]] for h in history if "episode_return" in h
        ]
    result = RunResult(
        experiment=exp.name,
        variant=variant.name,
        seed=seed,
        frames=int(done_frames),
        env_frames=int(done_frames) * exp.action_repeat,
        updates=int(updates),
        metric=exp.metric,
        score=score,
        eval_episodes=n_eval,
        train_score=train_score,
        seconds=time.perf_counter() - t0,
        path=str(run_dir),
    )
    payload = {
        **dataclasses.asdict(result),
        "requested_frames": frames,
        "system": variant.system,
        "unroll": variant.steps_per_update,
        "chance": exp.chance,
        "paper_frames": exp.paper_frames,
        "reference": list(exp.reference) if exp.reference else None,
        "description": exp.description,
        "config": repr(variant.config),
        "ray": dataclasses.asdict(ray) if ray is not None else None,
        "curve": curve,
        "provenance": provenance(),
    }
    result_path.write_text(json.dumps(payload, indent=2, default=_nan_to_none))
    return result


def _nan_to_none(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else str(x)


def run_experiment(
    exp: Experiment,
    logdir: str | Path,
    *,
    frames: int | None = None,
    seeds: int = 1,
    variants: tuple[str, ...] | None = None,
    resume: bool = False,
    progress: bool = True,
    ray: RayOptions | None = None,
) -> list[RunResult]:
    """Runs every variant (or the named ones) of ``exp`` for ``seeds`` seeds.

    Args:
        exp: the experiment.
        logdir: the root log folder; runs go to ``logdir/NAME/VARIANT/seed<K>``.
        frames: the budget per variant and seed (default: ``exp.frames``).
        seeds: seeds ``0 .. seeds - 1``.
        variants: a subset of the variant names (default: all).
        resume: skip finished runs with the same budget and continue unfinished
            ones from their last checkpoint; otherwise each run starts afresh.
        progress: show a progress bar per run.
        ray: train R2AC variants on Ray actors instead of the single-machine
            loop.

    Returns:
        One result per variant and seed.

    Raises:
        BackendMissingError: the experiment's simulator is not installed.
    """
    _check_backend(exp)
    frames = exp.frames if frames is None else int(frames)
    if frames < 1 or seeds < 1:
        raise ValueError("frames and seeds must be >= 1.")
    chosen = [exp.variant(v) for v in variants] if variants else list(exp.variants)
    if ray is not None:
        for variant in chosen:
            distributed_setup(exp, variant, ray)  # fail before anything runs
    results = []
    for seed in range(seeds):
        for variant in chosen:
            run_dir = Path(logdir) / exp.name / variant.name / f"seed{seed}"
            if progress:
                print(f"[{exp.name}] {variant.name} seed {seed}: {run_dir}", flush=True)
            r = run_variant(
                exp,
                variant,
                seed,
                run_dir,
                frames,
                resume=resume,
                progress=progress,
                ray=ray,
            )
            if progress:
                print(
                    f"[{exp.name}] {variant.name} seed {seed}: greedy {r.metric} "
                    f"{r.score:.3f} after {r.frames} frames ({r.seconds:.0f} s)",
                    flush=True,
                )
            results.append(r)
    return results
