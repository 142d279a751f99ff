"""The driver: run a training loop, report every K updates, checkpoint, resume.

One driver for every agent and every source of rollouts. ``train`` picks the
loop from ``env.spec.is_jax``:

* JAX environments: the fully jitted scan loop (:func:`run_updates`), one device
  call per ``K`` updates; metrics leave the device once per call.
* Host environments (envpool, POPGym, DMLab): the rollout loop, fed by an
  :class:`~rtrl_agents.Actor` (a Python loop over environment steps with a
  jitted ``act``), with a jitted ``update``.

``train_distributed`` (``_distributed.py``) runs the same rollout loop fed by
Ray actors. All report the same metrics and keep the run's record (:class:`RunRecord`):
``config.json``, checkpoints every ``checkpoint_every`` updates or
``checkpoint_seconds`` of wall time and at the end, logs cut back to the
restored checkpoint on resume, one process per folder. They stop on a
non-finite loss, gradient or state, naming the update and the quantity; the
last good checkpoint stays.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._actor import Actor
from ._config import LoopConfig
from ._core import Agent, Trajectory, check_env_matches, take_hyperparams
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
    agent: Agent[Any, Any], spec: Any, loop: LoopConfig | None = None
) -> dict[str, Any]:
    """What a run records and compares on resume when no ``run_config`` is
    given: the agent's config, the run's length and report period, and the
    environment's name, shapes and streams (checkpoint periods may change on
    resume; they are not part of it)."""
    return {
        "agent": config_to_json(agent.config),
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
    agent: Agent[Any, Any],
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
        agent: an agent (:func:`r2ac`, :func:`ppo`, :func:`streaming_ac`).
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
            recorded one (the change is recorded; hyperparameters held in state
            take the new values, and the learning-rate schedule, a function of
            the update count, continues from the resumed update under the new
            config).
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
    check_env_matches(agent.spec, env.spec)
    if eval_every is not None and (eval_every < 1 or eval_every % config.log_every):
        raise ValueError(
            f"eval_every={eval_every} must be a positive multiple of log_every="
            f"{config.log_every} (evaluations happen at reports)."
        )
    check_checkpoint_dir(config, checkpoint_dir)
    is_jax = bool(getattr(env.spec, "is_jax", True))
    with Session(
        agent,
        env.spec,
        config,
        lambda: initial_run_state(agent, env, key),
        agent.rollout_length * agent.num_envs,
        log_dir=log_dir,
        writers=writers,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
        resume=resume,
        run_config=run_config,
        allow_config_change=allow_config_change,
        provenance=provenance,
        evaluator=evaluator,
        eval_every=eval_every,
    ) as session:
        if is_jax:
            return _train_jax(agent, env, config, session)
        # Host simulators cannot be restored: on resume the environment restarts
        # and so do the carries; parameters, optimizer state, RNG and counters
        # resume.
        k_env = jax.random.split(_raw_key(jnp.asarray(key)), 3)[1]
        run = session.runner
        source = ActorSource(Actor(agent, env, k_env, run.key, run.agent))
        return train_rollouts(agent, source, config, session)


def check_checkpoint_dir(config: LoopConfig, checkpoint_dir: str | None) -> None:
    """A one-line ``ValueError`` when periods are set without a folder."""
    periodic = config.checkpoint_every is not None or config.checkpoint_seconds
    if periodic and checkpoint_dir is None:
        raise ValueError(
            "LoopConfig.checkpoint_every / checkpoint_seconds is set but no "
            "checkpoint_dir was given."
        )


class Session:
    """What every loop does around its updates: the run's record (folders,
    ``config.json``, restore or start, checkpoints), the writers and the
    reporter. A context manager; ``runner`` and ``done`` are where the loop
    starts (restored, with hyperparameters of a changed config applied).

    Args:
        agent: the agent (its config is the default run config).
        spec: the environment spec recorded by default.
        config: the loop's config.
        template: makes the state a run starts from (what checkpoints restore
            into).
        frames_per_update: environment steps per update, over all streams.
        log_dir, writers, checkpoint_dir, progress, resume, run_config,
        allow_config_change, provenance, evaluator, eval_every: as
            :func:`train`.
    """

    def __init__(
        self,
        agent: Agent[Any, Any],
        spec: Any,
        config: LoopConfig,
        template: Callable[[], RunnerState],
        frames_per_update: int,
        *,
        log_dir: str | None,
        writers: MetricWriter | None,
        checkpoint_dir: str | None,
        progress: bool,
        resume: bool,
        run_config: Any,
        allow_config_change: bool,
        provenance: Mapping[str, Any] | None,
        evaluator: Callable[[Any, int], Mapping[str, float]] | None = None,
        eval_every: int | None = None,
    ):
        self.record = RunRecord.from_loop(
            log_dir,
            checkpoint_dir,
            config,
            run_config=default_run_config(agent, spec, config)
            if run_config is None
            else run_config,
            resume=resume,
            allow_config_change=allow_config_change,
            provenance=provenance,
        )
        self._template, self._log_dir, self._writers = template, log_dir, writers
        self._progress, self._config = progress, config
        self._frames_per_update = frames_per_update
        self._evaluator, self._eval_every = evaluator, eval_every
        self._sink: MultiWriter | None = None

    def __enter__(self) -> Session:
        record, config = self.record, self._config
        record.__enter__()
        try:
            template = self._template()
            runner, done = record.begin(template, config.num_updates)
            if done and self._progress:
                print(record.resume_line(config.num_updates), file=sys.stderr)
            if record.changes:
                runner = eqx.tree_at(
                    lambda r: r.agent,
                    runner,
                    take_hyperparams(runner.agent, template.agent),
                )
            self.runner, self.done = runner, done
            self._sink = open_writers(
                record,
                self._log_dir,
                self._writers,
                config.num_updates * self._frames_per_update,
                self._progress,
                int(runner.frames),
            )
            self.report = Reporter(
                self._sink,
                list(record.history),
                config.num_updates,
                self._evaluator,
                self._eval_every,
            )
        except BaseException:
            record.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._sink is not None:
                self._sink.close()
        finally:
            self.record.__exit__(*exc)


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


def _train_jax(
    agent: Agent[Any, Any], env: Any, config: LoopConfig, session: Session
) -> TrainResult:
    chunk = eqx.filter_jit(run_updates)
    record, report = session.record, session.report
    runner, done = session.runner, session.done
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


@runtime_checkable
class RolloutSource(Protocol):
    """Where the rollout loop gets its batches (an actor here, Ray actors).

    Attributes:
        frames_per_update: environment steps per update, over all streams.
    """

    frames_per_update: int

    def start(self, state: Any, done: int) -> None:
        """Called once before the first batch."""
        ...

    def next_batch(self, state: Any, done: int) -> tuple[Trajectory, dict[str, float]]:
        """The next learner batch and its per-update statistics (episodes that
        ended, and any source-specific scalars)."""
        ...

    def updated(self, state: Any, done: int) -> None:
        """Called after each update with the new state."""
        ...

    def report_scalars(self, learn_seconds: float, wall_seconds: float) -> dict:
        """Scalars added to each report."""
        ...

    def run_state(self, state: Any, frames: int, final: bool = False) -> RunnerState:
        """The checkpointed state (``final``: the one :func:`train` returns)."""
        ...


class ActorSource:
    """Rollouts of one :class:`Actor` in this process, acting with the newest
    parameters (the host loop)."""

    def __init__(self, actor: Actor):
        self.actor = actor
        self.frames_per_update = actor.frames_per_rollout

    def start(self, state: Any, done: int) -> None:
        del state, done

    def next_batch(self, state: Any, done: int) -> tuple[Trajectory, dict]:
        del done
        return self.actor.rollout(state)

    def updated(self, state: Any, done: int) -> None:
        del state, done

    def report_scalars(self, learn_seconds: float, wall_seconds: float) -> dict:
        del learn_seconds, wall_seconds
        return {}

    def run_state(self, state: Any, frames: int, final: bool = False) -> RunnerState:
        a = self.actor
        carry = a.carry if final else None
        return host_run_state(
            state, a.key, a.episode_return, a.episode_length, frames, carry
        )


def train_rollouts(
    agent: Agent[Any, Any],
    source: RolloutSource,
    config: LoopConfig,
    session: Session,
) -> TrainResult:
    """The rollout loop: batches from ``source``, a jitted ``agent.update`` on
    each, a report every ``log_every`` updates, checkpoints as the record says.
    """
    update = eqx.filter_jit(agent.update)
    record, report = session.record, session.report
    state, done = session.runner.agent, session.done
    frames = int(session.runner.frames)
    source.start(state, done)
    pending: list[dict] = []
    t0, frames0, learn_s = time.perf_counter(), frames, 0.0

    # The state as of the last completed report (what a Ctrl-C keeps, so that
    # the checkpoint and the logs agree).
    reported = (done, source.run_state(state, frames), frames)
    try:
        while done < config.num_updates:
            batch, stats = source.next_batch(state, done)
            t = time.perf_counter()
            state, metrics = update(state, batch)
            jax.block_until_ready(state.update_count)
            learn_s += time.perf_counter() - t
            done += 1
            frames += source.frames_per_update
            source.updated(state, done)
            pending.append({**metrics, **stats, "frames": frames})
            if len(pending) == config.log_every or done == config.num_updates:
                stacked = stack_reports(pending)
                check_finite(stacked, done - len(pending) + 1)
                wall = max(time.perf_counter() - t0, 1e-9)
                for name, value in source.report_scalars(learn_s, wall).items():
                    stacked[name] = np.asarray(value)
                report(stacked, done, t0, frames0, state)
                pending, learn_s = [], 0.0
                t0, frames0 = time.perf_counter(), frames
                reported = (done, source.run_state(state, frames), frames)
                record.maybe_save(
                    done, reported[1], frames, final=done == config.num_updates
                )
    except KeyboardInterrupt:
        # Ctrl-C: keep the work up to the last completed report.
        record.maybe_save(*reported, final=True)
        raise
    return TrainResult(source.run_state(state, frames, final=True), report.history)


def initial_run_state(agent: Agent[Any, Any], env: Any, key: jax.Array) -> RunnerState:
    """The state a run of ``agent`` on ``env`` starts from (what its checkpoints
    restore into): :func:`init_runner` for a JAX environment; for a host
    environment, parameters, optimizer state, RNG and counters (the simulator
    and the carries are not part of it)."""
    if bool(getattr(env.spec, "is_jax", True)):
        return init_runner(agent, env, key)
    check_env_matches(agent.spec, env.spec)
    return _host_template(agent, key)


def _host_template(agent, key):
    # Same key split as init_runner, so a host run and a JAX run of the same
    # environment start from the same parameters.
    key = _raw_key(jnp.asarray(key))
    k_agent, _, k_run = jax.random.split(key, 3)
    n = agent.num_envs
    return host_run_state(agent.init(k_agent), k_run, np.zeros(n), np.zeros(n), 0)


def stack_reports(pending: list[dict]) -> dict[str, np.ndarray]:
    """Per-update metric dicts stacked into one dict of host arrays."""
    return jax.device_get(
        {k: np.stack([np.asarray(p[k]) for p in pending]) for k in pending[0]}
    )


def host_run_state(state, key, episode_return, episode_length, frames, carry=None):
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
