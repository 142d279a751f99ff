"""Host drivers: run a training loop, report every K updates, checkpoint, resume.

``train`` picks the loop from ``env.spec.is_jax``:

* JAX environments: the fully jitted scan loop (:func:`run_updates`), one device
  call per ``K`` updates; metrics leave the device once per call.
* Host environments (envpool, POPGym, DMLab): a Python loop over environment
  steps with a jitted ``act`` and a jitted ``update``.

Both report the same metrics, write them to the given writers, save orbax
checkpoints every ``checkpoint_every`` updates and stop on a non-finite loss or
gradient, naming the update and the quantity; the last good checkpoint stays.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._actor import Actor
from ._checkpoint import Checkpointer
from ._config import LoopConfig
from ._core import Agent
from ._logging import MetricWriter, MultiWriter, default_writers
from ._loop import RunnerState, _raw_key, init_runner, run_updates


class NonFiniteError(FloatingPointError):
    """A non-finite loss or gradient: the run stopped (its update was skipped)."""


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        state: the final run state (``RunnerState`` for JAX environments; for host
            environments a ``RunnerState`` whose ``env_state`` is ``None``).
        history: one dict of scalars per report.
    """

    state: Any
    history: list[dict[str, float]]


_EPISODE_KEYS = ("episode_return_sum", "episode_length_sum", "episodes")
_SKIP = ("nonfinite_loss", "nonfinite_grad", "frames")


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
    bad_loss = np.asarray(metrics.get("nonfinite_loss", 0)).reshape(-1)
    bad_grad = np.asarray(metrics.get("nonfinite_grad", 0)).reshape(-1)
    bad = np.flatnonzero((bad_loss > 0) | (bad_grad > 0))
    if bad.size:
        i = int(bad[0])
        what = "loss" if bad_loss[i] else "gradient"
        raise NonFiniteError(
            f"non-finite {what} at update {first_update + i}: the run stopped "
            f"without applying it; resume from the last good checkpoint."
        )


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
    resume: bool = True,
) -> TrainResult:
    """Trains ``agent`` on ``env`` for ``config.num_updates`` updates.

    Args:
        agent: an agent (``R2AC``, ``PPO``, ``StreamingAC``).
        env: an environment following :class:`EnvironmentLike`.
        key: the run's PRNG key.
        config: length, report and checkpoint periods.
        log_dir: TensorBoard event files and ``metrics.jsonl`` go here.
        writers: extra or alternative metric writers.
        checkpoint_dir: orbax checkpoints go here (needed if
            ``config.checkpoint_every`` is set).
        progress: show a progress bar over frames.
        resume: continue from the latest checkpoint in ``checkpoint_dir`` if any.

    Returns:
        The final state and the reports.
    """
    frames_per_update = agent.rollout_length * agent.num_envs
    sinks: list[MetricWriter] = [
        default_writers(log_dir, config.num_updates * frames_per_update, progress)
    ]
    if writers is not None:
        sinks.append(writers)
    sink = MultiWriter(sinks)
    ckpt = None
    if config.checkpoint_every is not None or (checkpoint_dir and resume):
        if checkpoint_dir is None:
            raise ValueError(
                "LoopConfig.checkpoint_every is set but no checkpoint_dir was given."
            )
        ckpt = Checkpointer(checkpoint_dir, config.keep_checkpoints)
    try:
        if bool(getattr(env.spec, "is_jax", True)):
            return _train_jax(agent, env, key, config, sink, ckpt, resume)
        return _train_host(agent, env, key, config, sink, ckpt, resume)
    finally:
        sink.close()
        if ckpt is not None:
            ckpt.close()


def _report(sink, history, metrics, done, t0, frames0):
    metrics = jax.device_get(metrics)
    scalars = summarise(metrics)
    dt = max(time.perf_counter() - t0, 1e-9)
    scalars["fps"] = (scalars["frames"] - frames0) / dt
    scalars["updates"] = float(done)
    sink.write(int(scalars["frames"]), scalars)
    history.append(scalars)
    return scalars


def _train_jax(agent, env, key, config, sink, ckpt, resume):
    runner = init_runner(agent, env, key)
    done = 0
    if ckpt is not None and resume and ckpt.latest_step() is not None:
        done = int(ckpt.latest_step())
        runner = ckpt.restore(runner, done)
    chunk = eqx.filter_jit(run_updates)
    history: list[dict[str, float]] = []
    while done < config.num_updates:
        k = min(config.log_every, config.num_updates - done)
        t0, frames0 = time.perf_counter(), float(runner.frames)
        new_runner, metrics = chunk(agent, env, runner, k)
        metrics = jax.device_get(metrics)
        check_finite(metrics, done + 1)
        runner = new_runner
        done += k
        _report(sink, history, metrics, done, t0, frames0)
        if (
            ckpt is not None
            and config.checkpoint_every
            and done % config.checkpoint_every == 0
        ):
            ckpt.save(done, runner)
    return TrainResult(runner, history)


def _train_host(agent, env, key, config, sink, ckpt, resume):
    # Same key split as init_runner, so a host run and a JAX run of the same
    # environment start from the same parameters.
    key = _raw_key(jnp.asarray(key))
    k_agent, k_env, k_run = jax.random.split(key, 3)
    state = agent.init(k_agent)
    n = agent.num_envs
    run = _host_run_state(state, k_run, np.zeros(n), np.zeros(n), 0)
    done = 0
    if ckpt is not None and resume and ckpt.latest_step() is not None:
        done = int(ckpt.latest_step())
        # Host simulators cannot be restored: the environment restarts and so
        # do the carries; parameters, optimizer state, RNG and counters resume.
        run = ckpt.restore(run, done)
    state = run.agent
    actor = Actor(agent, env, k_env, run.key, state)
    update = eqx.filter_jit(agent.update)
    frames = int(run.frames)
    history: list[dict[str, float]] = []
    pending: list[dict] = []
    t0, frames0 = time.perf_counter(), frames
    while done < config.num_updates:
        batch, stats = actor.rollout(state)
        frames += actor.frames_per_rollout
        state, metrics = update(state, batch)
        pending.append({**metrics, **stats, "frames": frames})
        done += 1
        if len(pending) == config.log_every or done == config.num_updates:
            stacked = stack_reports(pending)
            check_finite(stacked, done - len(pending) + 1)
            _report(sink, history, stacked, done, t0, frames0)
            pending, t0, frames0 = [], time.perf_counter(), frames
            if (
                ckpt is not None
                and config.checkpoint_every
                and (done % config.checkpoint_every == 0)
            ):
                ckpt.save(done, _host_run_state(state, *_actor_stats(actor, frames)))
    run = _host_run_state(state, *_actor_stats(actor, frames), carry=actor.carry)
    return TrainResult(run, history)


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
