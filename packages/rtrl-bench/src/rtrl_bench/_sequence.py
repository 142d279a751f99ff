"""Sequence experiments: the copy task and trace conditioning, run by rtrl-agents'
learners.

Both update every ``update_every`` steps from the carry the previous update left:
RTRL carries the traces, so its gradient is never truncated; TBPTT sees the last
``update_every`` steps only.

* Copy (supervised): :func:`rtrl_agents.sequence_learner` on batches of
  ``copy_task_batch`` sequences (length ``2 * max_length``), sigmoid
  cross-entropy of the bit to emit on the recall steps, one Adam step per
  segment of ``update_every`` steps. Score: bit accuracy on fresh batches.
* Trace conditioning (prediction): :func:`rtrl_agents.td_predictor` on the
  continuing ``memory/trace-conditioning`` stream, predicting the discounted US
  with TD(0) (``trace_lambda=0``: the direction ``-delta_t grad v_(t-1)``), one
  Adam step per segment of ``update_every`` steps. Score: mean squared error of
  the predictions against the true discounted returns on a held-out stream.

Runs are records like the agents' (``rtrl_agents.RunRecord``): ``config.json``,
``metrics.jsonl`` and TensorBoard events, checkpoints of the whole learner state
(learner, data key or environment state) by updates and by wall time, and exact
resume with the logs cut back to the restored checkpoint. One "update" of the
loop is one jitted call: a batch (copy, ``2L / K`` optimizer steps) or one
segment of ``K`` steps (trace conditioning).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._experiments import Experiment, SequenceConfig


def _per_update(cfg: SequenceConfig) -> int:
    """Frames (steps over streams) per loop update."""
    if cfg.task == "copy":
        return cfg.batch_size * 2 * cfg.max_length
    return cfg.batch_size * cfg.update_every


def sequence_schedule(
    cfg: SequenceConfig, exp: Experiment, frames: int
) -> tuple[int, int]:
    """``(num_updates, log_every)`` of a sequence run at a frame budget: about 100
    reports, the updates rounded up to whole reports."""
    del exp
    raw = max(1, math.ceil(frames / _per_update(cfg)))
    log_every = max(1, raw // 100)
    return math.ceil(raw / log_every) * log_every, log_every


def _core(cfg: SequenceConfig):
    import rtrl_agents as ra

    return ra.CoreConfig(cell=cfg.cell, hidden_size=cfg.hidden_size, method=cfg.method)


def copy_learner(cfg: SequenceConfig):
    """The copy task's learner: ``(learner, segments per batch)``."""
    import rtrl_agents as ra

    T = 2 * cfg.max_length
    K = min(cfg.update_every, T)
    config = ra.SequenceLearnerConfig(
        core=_core(cfg),
        segment_length=K,
        loss="bce",
        learning_rate=cfg.learning_rate,
        max_grad_norm=cfg.max_grad_norm,
    )
    # Inputs: the copy environment's 3 features; output: the bit to emit.
    return ra.sequence_learner(config, 3, 1, cfg.batch_size), T // K


def trace_learner(cfg: SequenceConfig, input_size: int):
    """The trace-conditioning predictor: TD(0), a segment of ``update_every``
    steps per update."""
    import rtrl_agents as ra

    config = ra.TDPredictorConfig(
        core=_core(cfg),
        discount=cfg.discount,
        trace_lambda=0.0,
        optimizer="adam",
        learning_rate=cfg.learning_rate,
        segment_length=cfg.update_every,
        max_grad_norm=cfg.max_grad_norm,
    )
    return ra.td_predictor(config, input_size, cfg.batch_size)


def _copy_batch(key, cfg: SequenceConfig, steps: int):
    """A copy batch as the learner's :class:`rtrl_agents.SequenceBatch` of
    ``steps`` steps (targets: the bit, as a float, per step)."""
    import jax.numpy as jnp

    import rtrl_agents as ra
    import rtrl_envs

    b = rtrl_envs.copy_task_batch(key, cfg.batch_size, cfg.max_length)
    return ra.SequenceBatch(
        b.inputs[:, :steps],
        b.targets[:, :steps, None].astype(jnp.float32),
        b.mask[:, :steps],
        b.resets[:, :steps],
    )


def _flags(metrics: Mapping[str, Any]) -> Any:
    import jax.numpy as jnp

    return sum(jnp.max(metrics[k]) for k in metrics if k.startswith("nonfinite"))


def run_sequence(
    cfg: SequenceConfig,
    exp: Experiment,
    seed: int,
    loop: Any,
    *,
    log_dir: str,
    checkpoint_dir: str,
    progress: bool = True,
    resume: bool = False,
    run_config: Any = None,
    allow_config_change: bool = False,
    provenance: Mapping[str, Any] | None = None,
) -> tuple[int, int, float, int, list[dict[str, Any]], str]:
    """Trains and evaluates one sequence learner in a run folder.

    Args:
        cfg: the learner.
        exp: its experiment (environment options, evaluation size).
        seed: the seed.
        loop: an ``rtrl_agents.LoopConfig``: updates, report and checkpoint
            periods.
        log_dir, checkpoint_dir, progress, resume, run_config,
        allow_config_change, provenance: as ``rtrl_agents.train``.

    Returns:
        ``(optimizer steps, frames, score, eval batches, history, metric)``:
        ``history`` holds the reports (``metrics.jsonl``), ``metric`` names the
        training score in them (``"accuracy"`` or ``"td_loss"``).

    Raises:
        rtrl_agents.NonFiniteError: an update was non-finite (not applied).
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import rtrl_agents as ra
    import rtrl_envs

    key = jax.random.PRNGKey(seed)
    k_model, k_data, k_eval = jax.random.split(key, 3)

    if cfg.task == "copy":
        learner, steps_per_update = copy_learner(cfg)
        steps = steps_per_update * learner.segment_length
        metric = "accuracy"

        @eqx.filter_jit
        def copy_step(state):
            lstate, k_data = state
            k_data, k = jax.random.split(k_data)
            lstate, m = ra.run_stream(learner, lstate, _copy_batch(k, cfg, steps))
            acc = jnp.sum(m["bit_accuracy"] * m["scored"]) / jnp.sum(m["scored"])
            return (lstate, k_data), acc, _flags(m)

        train_step = copy_step
        template = (learner.init(k_model), k_data)
    else:
        env = rtrl_envs.make(
            exp.env.name, num_envs=cfg.batch_size, seed=seed, **dict(exp.env.options)
        )
        learner = trace_learner(cfg, int(np.prod(env.spec.observation_shape)))
        steps_per_update = 1
        metric = "td_loss"
        K = cfg.update_every

        @eqx.filter_jit
        def trace_step(state):
            lstate, env_state, ts = state
            zeros = jnp.zeros((cfg.batch_size,), jnp.int32)

            def roll(c, _):
                s, t = c
                s, t_next = env.step(s, zeros)
                return (s, t_next), (t.observation, t.reward, t.first)

            (env_state, ts), (obs, cum, first) = jax.lax.scan(
                roll, (env_state, ts), None, K
            )
            batch = ra.CumulantBatch(
                *(jnp.swapaxes(x, 0, 1) for x in (obs, cum, first))
            )
            lstate, m = learner.update(lstate, batch)
            return (lstate, env_state, ts), 2.0 * m["loss"], _flags(m)

        train_step = trace_step
        env_state, ts = env.reset(k_data)
        template = (learner.init(k_model), env_state, ts)

    per_update = _per_update(cfg)
    record = ra.RunRecord.from_loop(
        log_dir,
        checkpoint_dir,
        loop,
        run_config=run_config,
        resume=resume,
        allow_config_change=allow_config_change,
        provenance=provenance,
    )
    with record:
        state, done = record.begin(template, loop.num_updates)
        history = list(record.history)
        sink = ra.open_writers(
            record,
            log_dir,
            None,
            loop.num_updates * per_update,
            progress,
            done * per_update,
        )
        try:
            window: list[Any] = []
            t0, frames0 = time.perf_counter(), done * per_update
            first = True
            while done < loop.num_updates:
                new_state, value, flags = train_step(state)
                if int(flags):
                    raise ra.NonFiniteError(
                        f"non-finite loss, gradient or state at update {done + 1}: "
                        "the run stopped without applying it; resume from the "
                        "last good checkpoint."
                    )
                state = new_state
                window.append(value)
                done += 1
                last = done == loop.num_updates
                if done % loop.log_every and not last:
                    continue
                value = float(np.mean(jax.device_get(window)))
                frames = done * per_update
                scalars = {
                    metric: value,
                    "frames": float(frames),
                    "updates": float(done),
                    # The first report of a process includes compilation.
                    "fps": float("nan")
                    if first
                    else (frames - frames0) / max(time.perf_counter() - t0, 1e-9),
                }
                first = False
                sink.write(frames, scalars)
                history.append({"step": frames, **scalars})
                window, t0, frames0 = [], time.perf_counter(), frames
                record.maybe_save(done, state, frames, final=last)
        finally:
            sink.close()
    net = state[0].params
    if cfg.task == "copy":
        keys = jax.random.split(k_eval, exp.eval_episodes)
        accuracy = eqx.filter_jit(_copy_accuracy)
        score = float(np.mean([float(accuracy(net, k, cfg)) for k in keys]))
    else:
        score = _trace_error(net, env, k_eval, cfg.discount)
    return (
        loop.num_updates * steps_per_update,
        loop.num_updates * per_update,
        score,
        exp.eval_episodes,
        history,
        metric,
    )


def _copy_accuracy(net, key, cfg: SequenceConfig):
    """Bit accuracy of ``net`` on a fresh batch, run from the episode start."""
    import jax
    import jax.numpy as jnp

    batch = _copy_batch(key, cfg, 2 * cfg.max_length)
    carry = jax.vmap(lambda _: net.initial_carry())(jnp.arange(cfg.batch_size))
    ys, _ = jax.vmap(net.unroll)(carry, batch.inputs, batch.resets)
    hit = ((ys[..., 0] > 0) == (batch.targets[..., 0] > 0.5)) * batch.mask
    return jnp.sum(hit) / jnp.sum(batch.mask)


def _trace_error(net, env, key, gamma, steps=2000):
    """Mean squared error of the predictions vs the true discounted returns."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import rtrl_envs

    B = env.spec.num_envs
    state, ts = env.reset(key)

    def roll(c, _):
        s, t = c
        s, t2 = env.step(s, jnp.zeros((B,), jnp.int32))
        return (s, t2), (t.observation, t.reward, t.first)

    _, (obs, cum, first) = jax.lax.scan(roll, (state, ts), None, steps)
    carry = jax.vmap(lambda _: net.initial_carry())(jnp.arange(B))
    predict = eqx.filter_jit(lambda n, c, x, r: jax.vmap(n.unroll)(c, x, r)[0])
    v = predict(net, carry, obs.swapaxes(0, 1), first.swapaxes(0, 1))
    g = rtrl_envs.discounted_returns(cum, gamma).swapaxes(0, 1)
    # Drop the first 200 steps (warm-up) and the last 200 (truncated returns).
    err = (v[..., 0] - g)[:, 200:-200]
    return float(jnp.mean(err**2))
