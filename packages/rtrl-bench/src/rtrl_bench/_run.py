"""Running a registered experiment: every variant x seed, logged, checkpointed.

Layout under the log folder::

    LOGDIR/NAME/VARIANT/seed<K>/
        config.json             the run's config (RunConfig as JSON), provenance,
                                and any change made on resume
        events.out.tfevents.*   TensorBoard scalars (train/episode_return, ...)
        metrics.jsonl           the same records, one per report
        ckpt/                   orbax checkpoints (parameters, optimizer, carries)
        result.json             final greedy evaluation, budget, curve, config,
                                provenance

A run folder is a record (``rtrl_agents.RunRecord``): ``run`` refuses a folder
that already holds a run unless ``--resume`` is given (nothing is deleted), holds
a lock on every folder it runs in, refuses to resume under another config unless
``--allow-config-change``, and on resume cuts the logs back to the checkpoint
it restores, so a killed and resumed run has the records of one never killed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from ._experiments import AgentConfig, EnvConfig, Experiment, SequenceConfig, Variant

if TYPE_CHECKING:
    import rtrl_agents as ra

RESULT_FILE = "result.json"
CHECKPOINT_DIR = "ckpt"


class BackendMissingError(RuntimeError):
    """The experiment needs a simulator or library that is not installed here."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one run (one variant, one seed) depends on.

    Its JSON form is the run folder's ``config.json`` (and is kept in every
    checkpoint and in ``result.json``); ``rtrl_agents.config_from_json(RunConfig,
    data["config"])`` gives it back.
    """

    experiment: str
    """The experiment's registry name."""

    variant: str
    """The variant's name."""

    seed: int
    """The training seed."""

    frames: int
    """The budget asked for: agent steps summed over streams."""

    num_updates: int
    """Learner updates (the budget rounded up to whole reports)."""

    log_every: int
    """Updates per report (and per device call of the jitted loop)."""

    env: EnvConfig
    """The environment."""

    agent: AgentConfig
    """The agent or sequence learner, as trained (R2AC's step size decays over
    ``num_updates``)."""

    eval_episodes: int
    """Held-out episodes (or batches) of the final greedy evaluation."""

    metric: str
    """What the final score measures."""

    eval_every: int | None = None
    """Updates between greedy evaluations during training (logged as
    ``eval/<metric>``); ``None``: only the final one."""

    def __post_init__(self) -> None:
        for name in ("experiment", "variant", "metric"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"RunConfig.{name} must be a non-empty string.")
        for name, low in (
            ("seed", 0),
            ("frames", 1),
            ("num_updates", 1),
            ("log_every", 1),
            ("eval_episodes", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(
                    f"RunConfig.{name} must be an int >= {low}, got {value!r}."
                )
        if not isinstance(self.env, EnvConfig):
            raise ValueError("RunConfig.env must be an EnvConfig.")
        if not isinstance(self.agent, AgentConfig):
            raise ValueError(
                f"RunConfig.agent must be an agent or sequence config, got "
                f"{type(self.agent).__name__}."
            )
        if self.num_updates % self.log_every:
            raise ValueError(
                f"RunConfig.num_updates={self.num_updates} must be a multiple of "
                f"log_every={self.log_every}."
            )
        if self.eval_every is not None and (
            self.eval_every < 1 or self.eval_every % self.log_every
        ):
            raise ValueError(
                f"RunConfig.eval_every={self.eval_every} must be a positive multiple "
                f"of log_every={self.log_every}."
            )


@dataclasses.dataclass(frozen=True)
class CheckpointPolicy:
    """How often ``run`` checkpoints: a kill loses at most the work since the
    last checkpoint, bounded both by updates and by wall time.

    Attributes:
        every_updates: save every this many updates (rounded up to whole
            reports); ``None``: every 10th report (10% of the run).
        every_minutes: also save when this many minutes of wall time passed
            since the last checkpoint (checked at each report); ``None``: not
            by time.
        keep: how many of the latest checkpoints to keep (>= 2, so that an
            unreadable newest one has a fallback).
    """

    every_updates: int | None = None
    every_minutes: float | None = 5.0
    keep: int = 3

    def __post_init__(self) -> None:
        if self.every_updates is not None and (
            isinstance(self.every_updates, bool)
            or not isinstance(self.every_updates, int)
            or self.every_updates < 1
        ):
            raise ValueError(
                f"checkpoint every {self.every_updates!r} updates: give an int >= 1."
            )
        if self.every_minutes is not None and not (
            isinstance(self.every_minutes, int | float)
            and math.isfinite(self.every_minutes)
            and self.every_minutes > 0
        ):
            raise ValueError(
                f"checkpoint every {self.every_minutes!r} minutes: give a number > 0."
            )
        if (
            isinstance(self.keep, bool)
            or not isinstance(self.keep, int)
            or self.keep < 2
        ):
            raise ValueError(
                f"keep {self.keep!r} checkpoints: keep at least 2, so that an "
                "unreadable newest one has a fallback."
            )

    def loop(self, num_updates: int, log_every: int):
        """The ``rtrl_agents.LoopConfig`` of a run of ``num_updates``."""
        import rtrl_agents as ra

        every = self.every_updates or 10 * log_every
        every = max(1, math.ceil(every / log_every)) * log_every
        return ra.LoopConfig(
            num_updates=num_updates,
            log_every=log_every,
            checkpoint_every=every,
            checkpoint_seconds=None
            if self.every_minutes is None
            else 60.0 * self.every_minutes,
            keep_checkpoints=self.keep,
        )


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
        seconds: wall-clock time of training and evaluation in the process
            that finished the run.
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


def _schedule(frames: int, per_update: int) -> tuple[int, int]:
    """``(num_updates, log_every)`` for a frame budget.

    About 100 reports; ``num_updates`` is rounded up to whole reports so that
    every device call has the same length (one compilation).
    """
    raw = max(1, math.ceil(frames / per_update))
    log_every = max(1, min(500, raw // 100))
    return math.ceil(raw / log_every) * log_every, log_every


def run_config(
    exp: Experiment,
    variant: Variant,
    seed: int,
    frames: int,
    eval_every: int | None = None,
) -> RunConfig:
    """The :class:`RunConfig` of one variant and seed at a frame budget.

    ``eval_every`` (updates between evaluations during training) is rounded up
    to whole reports.
    """
    import rtrl_agents as ra

    cfg = variant.config
    if isinstance(cfg, SequenceConfig):
        from ._sequence import sequence_schedule

        num_updates, log_every = sequence_schedule(cfg, exp, frames)
    else:
        per_update = variant.steps_per_update * exp.env.num_envs
        num_updates, log_every = _schedule(frames, per_update)
        if isinstance(cfg, ra.R2ACConfig):
            cfg = dataclasses.replace(cfg, decay_updates=num_updates)
    if eval_every is not None:
        if isinstance(cfg, SequenceConfig):
            raise ValueError(
                f"{exp.name} is a sequence experiment: it has no evaluation during "
                "training (its reports hold its training score); drop --eval-every."
            )
        eval_every = max(1, math.ceil(eval_every / log_every)) * log_every
    return RunConfig(
        experiment=exp.name,
        variant=variant.name,
        seed=seed,
        frames=frames,
        num_updates=num_updates,
        log_every=log_every,
        env=exp.env,
        agent=cfg,
        eval_episodes=exp.eval_episodes,
        metric=exp.metric,
        eval_every=eval_every,
    )


def check_backends(exp: Experiment, ray: RayOptions | None = None) -> None:
    """Raises :class:`BackendMissingError` if anything the experiment needs is
    missing here (checked before any run folder is made)."""
    if exp.requires and importlib.util.find_spec(exp.requires) is None:
        raise BackendMissingError(
            f"experiment {exp.name!r} needs the {exp.requires!r} module, which is "
            "not installed here (DeepMind Lab is not on PyPI: build it from "
            "https://github.com/google-deepmind/lab and pip install the wheel)."
        )
    import rtrl_envs

    if not exp.env.name.startswith("memory/"):
        try:
            rtrl_envs.check_backend(exp.env.name)
        except rtrl_envs.BackendNotInstalledError as e:
            first = (str(e).splitlines() or [""])[0]
            raise BackendMissingError(
                f"experiment {exp.name!r} needs a backend that is missing: {first}"
            ) from None
    # Names and options too (an option that make() would refuse), still without
    # building a simulator.
    rtrl_envs.check_options(exp.env.name, **dict(exp.env.options))
    if exp.env.eval_options:
        rtrl_envs.check_options(exp.env.name, **dict(exp.env.eval_options))
    if ray is not None and importlib.util.find_spec("ray") is None:
        raise BackendMissingError(
            "--ray needs Ray, which is not installed here: pip install "
            "'rtrl-agents[ray]'"
        )


def check_logdir(logdir: str | Path) -> Path:
    """The log folder, made if missing; a one-line ``ValueError`` if it is a file
    or cannot be written."""
    if not str(logdir).strip():
        raise ValueError("--logdir is empty: pass a folder.")
    path = Path(logdir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--logdir {path} is a file, not a folder: pass a folder.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".rtrl-bench-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(
            f"--logdir {path} cannot be written ({e.strerror or type(e).__name__}): "
            "pass a folder you can write to."
        ) from None
    return path


def make_env(env: EnvConfig, seed: int, evaluation: bool = False):
    """The environments of a run (``evaluation``: the held-out ones, with the
    evaluation options, e.g. ProcGen's unseen levels)."""
    import rtrl_envs

    options = dict(env.options)
    if evaluation and env.eval_options:
        options = dict(env.eval_options)
    return rtrl_envs.make(env.name, num_envs=env.num_envs, seed=seed, **options)


def eval_seed(seed: int) -> int:
    """The seed of a run's held-out evaluation environments."""
    return seed + 1_000_003


def make_actor_env(name: str, num_envs: int, options: tuple, seed: int):
    """One Ray actor's environments (module-level, so actors import it by name)."""
    import rtrl_envs

    return rtrl_envs.make(name, num_envs=num_envs, seed=seed, **dict(options))


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """Run experiments on Ray actors (``rtrl-bench run --ray ADDRESS``).

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
    """``(env_fn, DistributedConfig)`` for a variant on ``ray.actors`` actors
    (any agent: :func:`rtrl_agents.train_distributed`); a one-line
    ``ValueError`` when the variant cannot run there."""
    import functools

    import rtrl_agents as ra

    if isinstance(variant.config, SequenceConfig):
        raise ValueError(
            f"--ray runs agents that act in environments; {exp.name}/"
            f"{variant.name} is a {variant.config.task} learner."
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


def _make_agent(config: ra.AgentConfig, spec: Any):
    import rtrl_agents as ra

    return ra.make_agent(config, spec)


def evaluate(
    agent,
    state,
    env,
    key,
    episodes: int,
    *,
    greedy: bool = True,
    max_steps: int = 100_000,
    on_step: Callable[[Any], None] | None = None,
) -> list[float]:
    """Plays until ``episodes`` episodes have ended; returns their returns.

    Args:
        agent: the trained agent.
        state: its ``AgentState``.
        env: a fresh environment (held-out seed or levels).
        key: PRNG key (environment reset and, unless greedy, action sampling).
        episodes: how many finished episodes to return.
        greedy: act with the policy's mode (else sample from it).
        max_steps: give up after this many steps (continuing tasks).
        on_step: called with every ``TimeStep`` (e.g. to film it).

    Returns:
        The returns of the first ``episodes`` episodes that ended, in the order
        they ended (fewer if ``max_steps`` ran out first).
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import rtrl_agents as ra

    act = eqx.filter_jit(agent.act)
    step = jax.jit(env.step) if getattr(env.spec, "is_jax", False) else env.step
    k_env, key = jax.random.split(key)
    env_state, ts = env.reset(k_env)
    carry = agent.initial_carry(state)
    ret = np.zeros(env.spec.num_envs)
    length = np.zeros(env.spec.num_envs, np.int64)
    done: list[float] = []
    for _ in range(max_steps):
        if on_step is not None:
            on_step(ts)
        key, k = jax.random.split(key)
        ts_j = jax.tree.map(jnp.asarray, ts)
        action, carry, _ = act(state, carry, ts_j, k, greedy=greedy)
        env_state, ts = step(
            env_state, action if env.spec.is_jax else np.asarray(action)
        )
        ret, length, ended = ra.track_episodes(ret, length, ts)
        done.extend(ret[ended].tolist())
        if len(done) >= episodes:
            break
    return done[:episodes]


def evaluate_greedy(agent, state, env, key, episodes: int, max_steps: int = 100_000):
    """:func:`evaluate` with greedy actions (what ``run`` scores)."""
    return evaluate(agent, state, env, key, episodes, max_steps=max_steps)


def score_returns(metric: str, returns: list[float]) -> float:
    if not returns:
        return float("nan")
    r = np.asarray(returns)
    return float(np.mean(r > 0)) if metric == "success" else float(np.mean(r))


def _train_score(history: list[dict[str, float]]) -> float:
    tail = [h for h in history[-max(1, len(history) // 10) :] if "episode_return" in h]
    if not tail:
        return float("nan")
    return float(np.mean([h["episode_return"] for h in tail]))


def _curve(history: list[dict[str, Any]], key: str) -> list[list[float]]:
    return [[h["step"], h[key]] for h in history if h.get(key) is not None]


def _stored_result(path: Path) -> RunResult | None:
    """The result in ``path``; ``None`` if the file is missing or damaged."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        fields = {f.name for f in dataclasses.fields(RunResult)}
        return RunResult(**{k: _none_to_nan(v) for k, v in data.items() if k in fields})
    except (ValueError, TypeError, UnicodeDecodeError):
        return None


def check_trained(run_dir: Path, config: RunConfig) -> None:
    """Raises a one-line ``ValueError`` if the run in ``run_dir`` has trained
    more updates than ``config`` asks for (nothing is changed)."""
    ckpt = Path(run_dir) / CHECKPOINT_DIR
    steps = (
        [int(p.name) for p in ckpt.iterdir() if p.name.isdigit()]
        if ckpt.is_dir()
        else []
    )
    if steps and max(steps) > config.num_updates:
        per_update = _per_update_frames(config)
        trained = max(steps) * per_update
        raise ValueError(
            f"{run_dir} has trained {max(steps)} updates ({trained} frames), more "
            f"than --frames {config.frames} gives ({config.num_updates} updates): "
            f"ask for --frames {trained} or more (nothing was changed)."
        )


def _per_update_frames(config: RunConfig) -> int:
    if isinstance(config.agent, SequenceConfig):
        from ._sequence import _per_update

        return _per_update(config.agent)
    import rtrl_agents as ra

    steps = (
        1
        if isinstance(config.agent, ra.StreamingACConfig)
        else config.agent.rollout_length
    )
    return steps * config.env.num_envs


def _none_to_nan(x: Any) -> Any:
    return float("nan") if x is None else x


def _set_aside(path: Path, why: str = "superseded") -> None:
    """Renames an out-of-date (``superseded``: its run is being extended) or
    ``damaged`` ``result.json``, keeping it."""
    n = 1
    while (dst := path.with_name(f"result.{why}-{n}.json")).exists():
        n += 1
    path.rename(dst)


class _RunFolder(TypedDict):
    """The run-folder keywords every trainer of :func:`run_variant` takes."""

    log_dir: str
    checkpoint_dir: str
    progress: bool
    resume: bool
    run_config: Any
    allow_config_change: bool
    provenance: dict[str, Any]


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
    allow_config_change: bool = False,
    checkpoints: CheckpointPolicy | None = None,
    eval_every: int | None = None,
) -> RunResult:
    """Trains and evaluates one variant with one seed (see the module docstring);
    with ``ray``, the agent trains on Ray actors
    (:func:`rtrl_agents.train_distributed`).

    With ``resume``, a finished run whose ``config.json`` equals this config is
    not run again (its ``result.json`` is returned); an unfinished one continues
    from its newest readable checkpoint.

    Raises:
        rtrl_agents.RunExistsError: ``run_dir`` holds a run and ``resume`` is
            false.
        rtrl_agents.ConfigMismatchError: resuming under another config without
            ``allow_config_change``.
        rtrl_agents.RunInUseError: another process runs in ``run_dir``.
    """
    import jax

    import rtrl_agents as ra

    from ._provenance import provenance

    checkpoints = checkpoints or CheckpointPolicy()
    config = run_config(exp, variant, seed, frames, eval_every)
    config_json = ra.config_to_json(config)
    result_path = run_dir / RESULT_FILE
    with ra.RunLock(str(run_dir)):
        recorded = ra.read_run_config(str(run_dir)) if resume else None
        if recorded is not None:
            check_trained(run_dir, config)
        if recorded is not None and result_path.exists():
            diff = ra.config_diff(recorded["config"], config_json)
            stored = _stored_result(result_path)
            if stored is None:  # damaged: evaluated again from the checkpoint
                _set_aside(result_path, "damaged")
            elif not diff:
                return stored
            elif allow_config_change:
                _set_aside(result_path)
        t0 = time.perf_counter()
        common = _RunFolder(
            log_dir=str(run_dir),
            checkpoint_dir=str(run_dir / CHECKPOINT_DIR),
            progress=progress,
            resume=resume,
            run_config=config_json,
            allow_config_change=allow_config_change,
            provenance=provenance(),
        )
        loop = checkpoints.loop(config.num_updates, config.log_every)
        if isinstance(config.agent, SequenceConfig):
            from ._sequence import run_sequence

            out = run_sequence(config.agent, exp, seed, loop, **common)
            updates, done_frames, score, n_eval, history, curve_key = out
        else:
            # Distributed runs build no training environments here (actors
            # do); the held-out evaluation environment gives the spec instead.
            eval_env = make_env(config.env, eval_seed(seed), evaluation=True)
            env = make_env(config.env, seed) if ray is None else eval_env
            agent = _make_agent(config.agent, env.spec)
            if ray is None:
                trained = ra.train(
                    agent,
                    env,
                    jax.random.PRNGKey(seed),
                    loop,
                    evaluator=_evaluator(agent, config) if config.eval_every else None,
                    eval_every=config.eval_every,
                    **common,
                )
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
            per_update = variant.steps_per_update * exp.env.num_envs
            updates, done_frames = config.num_updates, config.num_updates * per_update
            score, n_eval = score_returns(exp.metric, returns), len(returns)
            history, curve_key = trained.history, "episode_return"
        # The history is what metrics.jsonl holds: on a resumed run, the
        # records kept from before the resume and this process's.
        curve = _curve(history, curve_key)
        if math.isfinite(score):  # beside the config in TensorBoard's hparams
            tb = ra.TensorBoardWriter(str(run_dir))
            tb.write(int(done_frames), {"result/score": score})
            tb.close()
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
            train_score=_train_score([{"episode_return": c[1]} for c in curve]),
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
            "deviations": list(exp.deviations),
            "config": config_json,
            "ray": dataclasses.asdict(ray) if ray is not None else None,
            "curve_metric": curve_key,
            "curve": curve,
            "provenance": provenance(),
        }
        text = json.dumps(_finite(payload), indent=2, default=_nan_to_none)
        tmp = result_path.with_name(f".{RESULT_FILE}.tmp-{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, result_path)
    return result


def _evaluator(agent, config: RunConfig):
    """Greedy evaluation on the held-out environments during training (the same
    as the final one; its own environments and key, so training is untouched)."""
    import jax

    env = make_env(config.env, eval_seed(config.seed), evaluation=True)

    def evaluate_now(state, updates: int) -> dict[str, float]:
        returns = evaluate(
            agent, state, env, jax.random.PRNGKey(config.seed + 1), config.eval_episodes
        )
        return {config.metric: score_returns(config.metric, returns)}

    return evaluate_now


def _finished(
    run_dir: Path, exp: Experiment, variant: Variant, seed, frames, eval_every
) -> bool:
    import rtrl_agents as ra

    recorded = ra.read_run_config(str(run_dir)) if run_dir.is_dir() else None
    if recorded is None or _stored_result(run_dir / RESULT_FILE) is None:
        return False
    config = ra.config_to_json(run_config(exp, variant, seed, frames, eval_every))
    return not ra.config_diff(recorded["config"], config)


def _finite(x: Any) -> Any:
    """NaN and infinities as ``null`` (strict JSON has no NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


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
    allow_config_change: bool = False,
    checkpoints: CheckpointPolicy | None = None,
    eval_every: int | None = None,
) -> list[RunResult]:
    """Runs every variant (or the named ones) of ``exp`` for ``seeds`` seeds.

    Everything a user can get wrong is checked before any run starts, and
    before any folder is made: the variant names, the budget, the backends, the
    log folder; then every run folder: one that holds a run is refused without
    ``resume`` (nothing is deleted), one held by another process is refused, and
    one made with another config is refused unless ``allow_config_change``.

    Args:
        exp: the experiment.
        logdir: the root log folder; runs go to ``logdir/NAME/VARIANT/seed<K>``.
        frames: the budget per variant and seed (default: ``exp.frames``).
        seeds: seeds ``0 .. seeds - 1``.
        variants: a subset of the variant names (default: all).
        resume: skip finished runs with the same config and continue unfinished
            ones from their newest readable checkpoint (their logs cut back to
            it).
        progress: show a progress bar per run.
        ray: train the variants on Ray actors instead of the single-machine
            loop.
        allow_config_change: resume runs whose config differs from their
            ``config.json`` (for example a larger ``frames``: the run continues
            from its checkpoint under the new config; R2AC's step size then
            follows the new schedule from the resumed update, a linear decay to
            0 over the new ``num_updates``). The change is recorded in
            ``config.json``; an out-of-date ``result.json`` is renamed
            ``result.superseded-N.json``.
        checkpoints: the checkpoint policy (default :class:`CheckpointPolicy`).
        eval_every: greedy evaluations on the held-out environments every this
            many updates during training, logged as ``eval/<metric>``.

    Returns:
        One result per variant and seed.

    Raises:
        ValueError: an unknown variant, a budget or seed count < 1, or a log
            folder that is a file or cannot be written.
        BackendMissingError: a simulator or Ray is not installed.
        rtrl_agents.RunExistsError, rtrl_agents.RunInUseError,
        rtrl_agents.ConfigMismatchError: see above.
    """
    import rtrl_agents as ra

    frames = exp.frames if frames is None else frames
    for name, value in (("frames", frames), ("seeds", seeds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
    chosen = [exp.variant(v) for v in variants] if variants else list(exp.variants)
    check_backends(exp, ray)
    if ray is not None:
        for variant in chosen:
            distributed_setup(exp, variant, ray)  # fail before anything runs
    for variant in chosen:  # every config is valid before anything runs
        run_config(exp, variant, 0, frames, eval_every)
    root = check_logdir(logdir)
    runs = [
        (seed, variant, root / exp.name / variant.name / f"seed{seed}")
        for seed in range(seeds)
        for variant in chosen
    ]
    with contextlib.ExitStack() as locks:
        for seed, variant, run_dir in runs:
            if run_dir.exists() and ra.holds_run(str(run_dir)):
                if not resume:
                    raise ra.RunExistsError(
                        f"{run_dir} already holds a run: pass --resume to continue "
                        "it (a finished one is skipped), or choose another --logdir "
                        "(nothing was deleted)."
                    )
                recorded = ra.read_run_config(str(run_dir))
                if recorded is None:
                    raise ra.RunExistsError(
                        f"{run_dir} holds logs but no config.json (a run of an older "
                        "version?): choose another --logdir (nothing was changed)."
                    )
                config = ra.config_to_json(
                    run_config(exp, variant, seed, frames, eval_every)
                )
                diff = ra.config_diff(recorded["config"], config)
                if diff and not allow_config_change:
                    raise ra.ConfigMismatchError(
                        f"{run_dir} was made with another config "
                        f"({ra.format_diff(diff)}): resume with the same settings "
                        f"(--config {run_dir}/config.json repeats them), pass "
                        "--allow-config-change to continue it under the new ones, "
                        "or choose another --logdir."
                    )
                check_trained(run_dir, run_config(exp, variant, seed, frames))
            locks.enter_context(ra.RunLock(str(run_dir)))
        results = []
        for seed, variant, run_dir in runs:
            if progress:
                finished = resume and _finished(
                    run_dir, exp, variant, seed, frames, eval_every
                )
                note = " (finished before: skipped)" if finished else ""
                print(
                    f"[{exp.name}] {variant.name} seed {seed}: {run_dir}{note}",
                    flush=True,
                )
            r = run_variant(
                exp,
                variant,
                seed,
                run_dir,
                frames,
                resume=resume,
                progress=progress,
                ray=ray,
                allow_config_change=allow_config_change,
                checkpoints=checkpoints,
                eval_every=eval_every,
            )
            if progress:
                print(
                    f"[{exp.name}] {variant.name} seed {seed}: greedy {r.metric} "
                    f"{r.score:.3f} after {r.frames} frames ({r.seconds:.0f} s)",
                    flush=True,
                )
            results.append(r)
    return results
