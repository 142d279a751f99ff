"""Sequence learners on one rtrl-cells cell: the copy task and trace conditioning.

Both update every ``update_every`` steps from the carry the previous update left:
RTRL (``unroll(method="chunked")``) carries the traces, so its gradient is never
truncated; TBPTT (``method="bptt"``) sees the last ``update_every`` steps only.

* Copy (supervised): batches of ``copy_task_batch`` sequences (length
  ``2 * max_length``), cross-entropy on the recall steps. Score: bit accuracy on
  fresh batches.
* Trace conditioning (prediction): the continuing ``memory/trace-conditioning``
  stream; semi-gradient TD(0) on the US cumulant. Score: mean squared error of the
  predictions against the true discounted returns on a held-out stream.

Runs are records like the agents' (``rtrl_agents.RunRecord``): ``config.json``,
``metrics.jsonl`` and TensorBoard events, checkpoints of the whole learner state
(model, optimizer, data key, carries and environment state) by updates and by
wall time, and exact resume with the logs cut back to the restored checkpoint.
One "update" of the loop is one jitted call: a batch (copy, ``2L / K``
optimizer steps) or one window of ``K`` steps (trace conditioning).
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


def _cell(cfg: SequenceConfig, input_size: int, key):
    import rtrl_cells as rc

    return rc.cell_kind(cfg.cell).make(
        input_size=input_size, hidden_size=cfg.hidden_size, key=key
    )


def _method(cfg: SequenceConfig):
    import rtrl_cells as rc

    return rc.method(cfg.method)


def _model(cfg: SequenceConfig, input_size: int, outputs: int, key):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    k_cell, k_out = jax.random.split(key)
    cell = _cell(cfg, input_size, k_cell)
    ys = jax.eval_shape(
        lambda c: c.unroll(
            c.init_carry(), jnp.zeros((1, input_size)), jnp.zeros((1,), bool)
        )[0],
        cell,
    )
    return cell, eqx.nn.Linear(ys.shape[-1], outputs, key=k_out)


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
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    import rtrl_agents as ra
    import rtrl_envs

    method = _method(cfg)
    copy = cfg.task == "copy"
    key = jax.random.PRNGKey(seed)
    k_model, k_data, k_eval = jax.random.split(key, 3)
    input_size = 3 if copy else 2 + dict(exp.env.options).get("num_distractors", 10)
    model = _model(cfg, input_size, 2 if copy else 1, k_model)
    opt = optax.chain(
        optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate)
    )
    opt_state = opt.init(eqx.filter(model, eqx.is_inexact_array))
    B, K = cfg.batch_size, cfg.update_every

    def outputs(model, carry, xs, resets, m=method):
        cell, head = model
        ys, carry = jax.vmap(lambda c, x, r: cell.unroll(c, x, r, method=m))(
            carry, xs, resets
        )
        return jax.vmap(jax.vmap(head))(ys), carry

    def apply(model, opt_state, grads):
        updates, opt_state = opt.update(
            grads, opt_state, eqx.filter(model, eqx.is_inexact_array)
        )
        return eqx.apply_updates(model, updates), opt_state

    carry0 = jax.vmap(lambda _: model[0].init_carry())(jnp.arange(B))

    if copy:
        T = 2 * cfg.max_length
        K = min(K, T)
        n = T // K
        metric = "accuracy"

        def chunk_loss(model, carry, xs, ts, mask, resets):
            logits, carry = outputs(model, carry, xs, resets)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, ts)
            hit = (jnp.argmax(logits, -1) == ts) * mask
            return jnp.sum(ce * mask) / jnp.maximum(mask.sum(), 1), (carry, hit)

        @eqx.filter_jit
        def train_step(state):
            model, opt_state, k_data = state
            k_data, k = jax.random.split(k_data)
            b = rtrl_envs.copy_task_batch(k, B, cfg.max_length)
            split = [
                x[:, : n * K].reshape(B, n, K, *x.shape[2:]).swapaxes(0, 1)
                for x in (b.inputs, b.targets, b.mask, b.resets)
            ]

            def body(s, chunk):
                model, opt_state, carry = s
                (_, (carry, hit)), g = eqx.filter_value_and_grad(
                    chunk_loss, has_aux=True
                )(model, carry, *chunk)
                model, opt_state = apply(model, opt_state, g)
                return (model, opt_state, carry), hit.sum()

            (model, opt_state, _), hits = jax.lax.scan(
                body, (model, opt_state, carry0), split
            )
            acc = hits.sum() / b.mask[:, : n * K].sum()
            return (model, opt_state, k_data), acc

        @eqx.filter_jit
        def evaluate(model, key):
            b = rtrl_envs.copy_task_batch(key, B, cfg.max_length)
            logits, _ = outputs(model, carry0, b.inputs, b.resets, "bptt")
            hit = (jnp.argmax(logits, -1) == b.targets) * b.mask
            return hit.sum() / b.mask.sum()

        template = (model, opt_state, k_data)
        steps_per_update = n
    else:
        env = rtrl_envs.make(
            exp.env.name, num_envs=B, seed=seed, **dict(exp.env.options)
        )
        gamma = cfg.discount
        metric = "td_loss"

        def td_loss(model, carry, xs, cs, resets, x_next, r_next):
            v, carry_K = outputs(model, carry, xs, resets)
            v = v[..., 0]
            # Bootstrap from one more step with the same parameters (no gradient).
            v_next, _ = outputs(model, carry_K, x_next, r_next)
            v_all = jnp.concatenate([v[:, 1:], v_next[..., 0]], 1)
            target = cs + gamma * jax.lax.stop_gradient(v_all)
            err = v - target
            return jnp.mean(err**2), carry_K

        @eqx.filter_jit
        def train_step(state):
            model, opt_state, carry, env_state, ts = state

            def roll(c, _):
                s, t = c
                s, t2 = env.step(s, jnp.zeros((B,), jnp.int32))
                return (s, t2), (t.observation, t2.reward, t.first)

            (env_state, ts_new), (obs, cum, first) = jax.lax.scan(
                roll, (env_state, ts), None, K
            )
            xs, cs, rs = (a.swapaxes(0, 1) for a in (obs, cum, first))
            nxt = (ts_new.observation[:, None], ts_new.first[:, None])
            (loss, carry), g = eqx.filter_value_and_grad(td_loss, has_aux=True)(
                model, carry, xs, cs, rs, *nxt
            )
            model, opt_state = apply(model, opt_state, g)
            return (model, opt_state, carry, env_state, ts_new), loss

        env_state, ts = env.reset(k_data)
        template = (model, opt_state, carry0, env_state, ts)
        steps_per_update = 1

    per_update = _per_update(cfg)
    record = ra.RunRecord(
        log_dir,
        checkpoint_dir,
        run_config=run_config,
        resume=resume,
        allow_config_change=allow_config_change,
        checkpoint_every=loop.checkpoint_every,
        checkpoint_seconds=loop.checkpoint_seconds,
        keep_checkpoints=loop.keep_checkpoints,
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
                state, value = train_step(state)
                window.append(value)
                done += 1
                last = done == loop.num_updates
                if done % loop.log_every and not last:
                    continue
                value = float(np.mean(jax.device_get(window)))
                if not math.isfinite(value):
                    raise ra.NonFiniteError(
                        f"non-finite {metric} by update {done}: the run stopped; "
                        "resume from the last good checkpoint."
                    )
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
    model = state[0]
    if copy:
        keys = jax.random.split(k_eval, exp.eval_episodes)
        score = float(np.mean([float(evaluate(model, k)) for k in keys]))
    else:
        score = _trace_error(model, env, k_eval, gamma, outputs)
    steps = loop.num_updates * steps_per_update
    return (
        steps,
        loop.num_updates * per_update,
        score,
        exp.eval_episodes,
        history,
        metric,
    )


def _trace_error(model, env, key, gamma, outputs, steps=2000):
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
    carry = jax.vmap(lambda _: model[0].init_carry())(jnp.arange(B))
    v, _ = eqx.filter_jit(outputs)(
        model, carry, obs.swapaxes(0, 1), first.swapaxes(0, 1), "bptt"
    )
    g = rtrl_envs.discounted_returns(cum, gamma).swapaxes(0, 1)
    # Drop the first 200 steps (warm-up) and the last 200 (truncated returns).
    err = (v[..., 0] - g)[:, 200:-200]
    return float(jnp.mean(err**2))
