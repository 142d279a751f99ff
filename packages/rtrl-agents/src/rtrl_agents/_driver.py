"""Host drivers: run a training loop, report every K updates, checkpoint, resume.

``train`` picks the loop from ``env.spec.is_jax``:

* JAX environments: the fully jitted scan loop (:func:`run_updates`), one device
  call per ``K`` updates; metrics leave the device once per call.
* Host environments (envpool, POPGym, DMLab): a Python loop over environment
  steps with a jitted ``act`` and a jitted ``update``.

Both report the same metrics and keep the run's record (:class:`RunRecord`):
``config.json``, checkpoints every ``checkpoint_every`` updates or
``checkpoint_seconds`` of wall time and at the end, logs cut back to the
restored checkpoint on resume, one process per folder. They stop on a
non-finite loss, gradient or state, naming the update and the quantity; the
last good checkpoint stays.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._actor import Actor
from ._config import LoopConfig
from ._core import Agent, check_env_matches, take_hyperparams
from ._errors import NonFiniteError
from ._logging import MetricWriter, MultiWriter, default_writers
from ._loop import RunnerState, _raw_key, init_runner, run_updates
from ._record import RunRecord
from ._serialize import config_to_json


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        state: the final run state (``RunnerState`` for JAX environments; for host
            environments a ``RunnerState`` whose ``env_state`` is ``None``).
        history: one record per report, as ``metrics.jsonl`` holds them
            (``step`` = frames, then the scalars): on a resumed run with a
            ``log_dir``, the records kept from before the resume, then this
            process's.
    """

    state: Any
    history: list[dict[str, float]]


_EPISODE_KEYS = ("episode_return_sum", "episode_length_sum", "episodes")
_FLAGS = ("nonfinite_loss", "nonfinite_grad", "nonfinite_state")
_SKIP = (*_FLAGS, "frames")


def summarise(metrics: Mapping[str, Any]) -> dict[str, float]:
    """One report from ``K`` stacked per-update metrics (host numpy arrays).

    Means over the updates, except the episode statistics: ``episode_return`` and
    ``episode_length`` are averages over the episodes that ended in these
    updates (absent if none did), and ``frames`` is the latest count.
    """
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if k in _EPISODE_KEYS or k in _SKIP:
            continue
        out[k] = float(np.mean(np.asarray(v, np.float64)))
    n = float(np.sum(metrics["episodes"]))
    out["episodes"] = n
    if n > 0:
        out["episode_return"] = float(np.sum(metrics["episode_return_sum"])) / n
        out["episode_length"] = float(np.sum(metrics["episode_length_sum"])) / n
    out["frames"] = float(np.asarray(metrics["frames"]).reshape(-1)[-1])
    return out


def check_finite(metrics: Mapping[str, Any], first_update: int) -> None:
    """Raises :class:`NonFiniteError` naming the first bad update and quantity."""
    names = {
        "nonfinite_loss": "loss",
        "nonfinite_grad": "gradient",
        "nonfinite_state": "parameters or optimizer state",
    }
    flags = {k: np.asarray(metrics.get(k, 0)).reshape(-1) for k in names}
    bad = np.flatnonzero(sum(f > 0 for f in flags.values()))
    if bad.size:
        i = int(bad[0])
        what = next(names[k] for k, f in flags.items() if f[i])
        raise NonFiniteError(
            f"non-finite {what} at update {first_update + i}: the run stopped "
            f"without applying it; resume from the last good checkpoint."
        )


def default_run_config(
    agent: Agent, spec: Any, loop: LoopConfig | None = None
) -> dict[str, Any]:
    """What a run records and compares on resume when no ``run_config`` is
    given: the agent's config, the run's length and report period, and the
    environment's name, shapes and streams (checkpoint periods may change on
    resume; they are not part of it)."""
    config = getattr(agent, "config", None)
    return {
        "agent": None if config is None else config_to_json(config),
        "loop": None
        if loop is None
        else {"num_updates": loop.num_updates, "log_every": loop.log_every},
        "env": {
            "name": getattr(spec, "name", None),
            "observation_shape": list(getattr(spec, "observation_shape", ())),
            "action_space": repr(getattr(spec, "action_space", None)),
            "num_envs": int(getattr(spec, "num_envs", 0)),
        },
    }


def train(
    agent: Agent,
    env: Any,
    key: jax.Array,
    config: LoopConfig,
    *,
    log_dir: str | None = None,
    writers: MetricWriter | None = None,
    checkpoint_dir: str | None = None,
    progress: bool = False,
    resume: bool = False,
    run_config: Any = None,
    allow_config_change: bool = False,
    provenance: Mapping[str, Any] | None = None,
    evaluator: Callable[[Any, int], Mapping[str, float]] | None = None,
    eval_every: int | None = None,
) -> TrainResult:
    """Trains ``agent`` on ``env`` for ``config.num_updates`` updates.

    Args:
        agent: an agent (``R2AC``, ``PPO``, ``StreamingAC``).
        env: an environment following :class:`EnvironmentLike`, the one the
            agent was built for.
        key: the run's PRNG key.
        config: length, report and checkpoint periods.
        log_dir: the run folder: ``config.json``, TensorBoard event files and
            ``metrics.jsonl`` go here.
        writers: extra or alternative metric writers.
        checkpoint_dir: orbax checkpoints go here (needed if
            ``config.checkpoint_every`` or ``checkpoint_seconds`` is set); a
            checkpoint is also saved after the last update.
        progress: show a progress bar over frames.
        resume: continue the run in ``log_dir``/``checkpoint_dir`` from its
            newest readable checkpoint (logs after it are cut); with progress
            on, a line says which. Without it (the default), folders that
            already hold a run are refused: nothing is resumed or mixed up
            unless asked.
        run_config: the run's config as JSON (see :func:`config_to_json`),
            recorded in ``config.json`` and checkpoints and compared on resume;
            default :func:`default_run_config` (agent config and env spec).
        allow_config_change: resume even though ``run_config`` differs from the
            recorded one (the change is recorded; the learning-rate schedule is
            a function of the update count, so it continues from the resumed
            update under the new config).
        provenance: JSON kept in ``config.json`` (versions, machine, ...).
        evaluator: ``evaluator(agent_state, updates) -> {name: value}``, run
            every ``eval_every`` updates (at reports) and after the last one;
            its values join the report as ``eval/<name>`` (e.g. a greedy
            evaluation on held-out environments). It must not touch the
            training state or RNG (a resumed run stays exact).
        eval_every: updates between evaluations (a multiple of
            ``config.log_every``).

    Returns:
        The final state and the reports.

    Raises:
        ValueError: ``env`` is not the environment the agent was built for, or
            periods are set without a ``checkpoint_dir``.
        RunInUseError, RunExistsError, ConfigMismatchError,
        CheckpointMismatchError: see :class:`RunRecord`.
        NonFiniteError: an update produced a non-finite loss, gradient or state
            (not applied, not saved).
    """
    check_env_matches(getattr(agent, "spec", env.spec), env.spec)
    if eval_every is not None and (eval_every < 1 or eval_every % config.log_every):
        raise ValueError(
            f"eval_every={eval_every} must be a positive multiple of log_every="
            f"{config.log_every} (evaluations happen at reports)."
        )
    periodic = config.checkpoint_every is not None or config.checkpoint_seconds
    if periodic and checkpoint_dir is None:
        raise ValueError(
            "LoopConfig.checkpoint_every / checkpoint_seconds is set but no "
            "checkpoint_dir was given."
        )
    record = RunRecord(
        log_dir,
        checkpoint_dir,
        run_config=default_run_config(agent, env.spec, config)
        if run_config is None
        else run_config,
        resume=resume,
        allow_config_change=allow_config_change,
        checkpoint_every=config.checkpoint_every,
        checkpoint_seconds=config.checkpoint_seconds,
        keep_checkpoints=config.keep_checkpoints,
        provenance=provenance,
    )
    frames_per_update = agent.rollout_length * agent.num_envs
    with record:
        template = initial_run_state(agent, env, key)
        runner, done = record.begin(template, config.num_updates)
        if done and progress:
            print(record.resume_line(config.num_updates), file=sys.stderr, flush=True)
        if record.changes:
            runner = eqx.tree_at(
                lambda r: r.agent,
                runner,
                take_hyperparams(runner.agent, template.agent),
            )
        sink = open_writers(
            record,
            log_dir,
            writers,
            config.num_updates * frames_per_update,
            progress,
            int(runner.frames),
        )
        report = Reporter(
            sink, list(record.history), config.num_updates, evaluator, eval_every
        )
        try:
            loop = (
                _train_jax if bool(getattr(env.spec, "is_jax", True)) else _train_host
            )
            return loop(agent, env, key, config, report, record, runner, done)
        finally:
            sink.close()


def open_writers(
    record: RunRecord,
    log_dir: str | None,
    writers: MetricWriter | None,
    total_frames: int,
    progress: bool,
    frames: int,
) -> MultiWriter:
    """The writers of a run (TensorBoard, ``metrics.jsonl``, the bar and any
    extra ones); a run that starts from scratch records its config in
    TensorBoard (text and hparams)."""
    sinks: list[MetricWriter] = [
        default_writers(log_dir, total_frames, progress, initial_frames=frames)
    ]
    if writers is not None:
        sinks.append(writers)
    sink = MultiWriter(sinks)
    if record.start_step == 0 and record.run_config is not None:
        sink.write_config(record.run_config)
    return sink


class Reporter:
    """Turns ``K`` updates' stacked metrics into one report and writes it.

    The report's ``fps`` covers the updates since the previous report; the
    first report of a process leaves it out (``nan``), since its time includes
    compiling the training step. With an ``evaluator``, every ``eval_every``
    updates (and after the last one) its scalars join the report under
    ``eval/`` (TensorBoard tags ``eval/<name>``).

    Args:
        sink: where reports go.
        history: the records so far (appended to).
        num_updates: the run's length.
        evaluator: ``evaluator(agent_state, updates) -> {name: value}``, or
            ``None``.
        eval_every: updates between evaluations.
    """

    def __init__(
        self,
        sink: MetricWriter,
        history: list[dict[str, float]],
        num_updates: int,
        evaluator: Callable[[Any, int], Mapping[str, float]] | None = None,
        eval_every: int | None = None,
    ):
        self.sink, self.history, self.num_updates = sink, history, num_updates
        self.evaluator, self.eval_every = evaluator, eval_every
        self._first = True

    def __call__(
        self, metrics: Mapping[str, Any], done: int, t0: float, frames0: float, state
    ) -> dict[str, float]:
        scalars = summarise(jax.device_get(metrics))
        dt = max(time.perf_counter() - t0, 1e-9)
        scalars["fps"] = (
            float("nan") if self._first else (scalars["frames"] - frames0) / dt
        )
        self._first = False
        scalars["updates"] = float(done)
        due = self.eval_every and (
            done % self.eval_every == 0 or done == self.num_updates
        )
        if self.evaluator is not None and due:
            agent_state = state() if callable(state) else state
            for name, value in self.evaluator(agent_state, done).items():
                scalars[f"eval/{name}"] = float(value)
        self.sink.write(int(scalars["frames"]), scalars)
        # The same record as metrics.jsonl holds (so a resumed history, which
        # starts with the records read back, has one form throughout).
        self.history.append({"step": int(scalars["frames"]), **scalars})
        return scalars


def _train_jax(agent, env, key, config, report, record, runner, done):
    chunk = eqx.filter_jit(run_updates)
    # The state as of the last completed report (what a Ctrl-C keeps, so that
    # the checkpoint and the logs agree).
    reported = (done, runner, int(runner.frames))
    try:
        while done < config.num_updates:
            k = min(config.log_every, config.num_updates - done)
            t0, frames0 = time.perf_counter(), float(runner.frames)
            new_runner, metrics = chunk(agent, env, runner, k)
            metrics = jax.device_get(metrics)
            check_finite(metrics, done + 1)
            runner = new_runner
            done += k
            report(metrics, done, t0, frames0, runner.agent)
            reported = (done, runner, int(runner.frames))
            final = done == config.num_updates
            record.maybe_save(done, runner, int(runner.frames), final=final)
    except KeyboardInterrupt:
        # Ctrl-C: keep the work up to the last completed report.
        record.maybe_save(*reported, final=True)
        raise
    return TrainResult(runner, report.history)


def initial_run_state(agent: Agent, env: Any, key: jax.Array) -> RunnerState:
    """The state a run of ``agent`` on ``env`` starts from (what its checkpoints
    restore into): :func:`init_runner` for a JAX environment; for a host
    environment, parameters, optimizer state, RNG and counters (the simulator
    and the carries are not part of it)."""
    if bool(getattr(env.spec, "is_jax", True)):
        return init_runner(agent, env, key)
    check_env_matches(getattr(agent, "spec", env.spec), env.spec)
    return _host_template(agent, key)


def _host_template(agent, key):
    # Same key split as init_runner, so a host run and a JAX run of the same
    # environment start from the same parameters.
    key = _raw_key(jnp.asarray(key))
    k_agent, _, k_run = jax.random.split(key, 3)
    n = agent.num_envs
    return _host_run_state(agent.init(k_agent), k_run, np.zeros(n), np.zeros(n), 0)


def _train_host(agent, env, key, config, report, record, run, done):
    # Host simulators cannot be restored: on resume the environment restarts and
    # so do the carries; parameters, optimizer state, RNG and counters resume.
    k_env = jax.random.split(_raw_key(jnp.asarray(key)), 3)[1]
    state = run.agent
    actor = Actor(agent, env, k_env, run.key, state)
    update = eqx.filter_jit(agent.update)
    frames = int(run.frames)
    pending: list[dict] = []
    t0, frames0 = time.perf_counter(), frames
    # The state as of the last report (what a Ctrl-C keeps).
    snapshot = functools.partial(_host_run_state, state, *_actor_stats(actor, frames))
    reported = (done, snapshot, frames)
    try:
        while done < config.num_updates:
            batch, stats = actor.rollout(state)
            frames += actor.frames_per_rollout
            state, metrics = update(state, batch)
            pending.append({**metrics, **stats, "frames": frames})
            done += 1
            if len(pending) == config.log_every or done == config.num_updates:
                stacked = stack_reports(pending)
                check_finite(stacked, done - len(pending) + 1)
                report(stacked, done, t0, frames0, state)
                pending, t0, frames0 = [], time.perf_counter(), frames
                snapshot = functools.partial(
                    _host_run_state, state, *_actor_stats(actor, frames)
                )
                reported = (done, snapshot, frames)
                record.maybe_save(
                    done, snapshot, frames, final=done == config.num_updates
                )
    except KeyboardInterrupt:
        # Ctrl-C: keep the work up to the last completed report.
        record.maybe_save(*reported, final=True)
        raise
    run = _host_run_state(state, *_actor_stats(actor, frames), carry=actor.carry)
    return TrainResult(run, report.history)


def _actor_stats(actor, frames):
    return actor.key, actor.episode_return, actor.episode_length, frames


def stack_reports(pending: list[dict]) -> dict[str, np.ndarray]:
    """Per-update metric dicts stacked into one dict of host arrays."""
    return jax.device_get(
        {k: np.stack([np.asarray(p[k]) for p in pending]) for k in pending[0]}
    )


def _host_run_state(state, key, episode_return, episode_length, frames, carry=None):
    """The checkpointed state of a host-environment run: no simulator state and
    (in checkpoints) no carry, since a host simulator cannot be restored."""
    return RunnerState(
        agent=state,
        env_state=None,
        timestep=None,
        carry=carry,
        key=key,
        episode_return=jnp.asarray(episode_return, jnp.float32),
        episode_length=jnp.asarray(episode_length, jnp.int32),
        frames=jnp.asarray(frames, jnp.int32),
    )
