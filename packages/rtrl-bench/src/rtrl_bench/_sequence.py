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
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ._experiments import Experiment, SequenceConfig


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
    run_dir: Path,
    frames: int,
    progress: bool = True,
) -> tuple[int, int, float, float, int, list[list[float]]]:
    """Trains and evaluates one sequence learner.

    Returns:
        ``(updates, frames, score, train_score, eval_batches, curve)``; the curve
        holds ``[frames, training score]`` pairs (accuracy or squared error).
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    from rtrl_agents import TensorBoardWriter

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
        from rtrl_envs._memory import copy_task_batch

        T = 2 * cfg.max_length
        K = min(K, T)

        def chunk_loss(model, carry, xs, ts, mask, resets):
            logits, carry = outputs(model, carry, xs, resets)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, ts)
            hit = (jnp.argmax(logits, -1) == ts) * mask
            return jnp.sum(ce * mask) / jnp.maximum(mask.sum(), 1), (carry, hit)

        @eqx.filter_jit
        def train_batch(model, opt_state, key):
            b = copy_task_batch(key, B, cfg.max_length)
            n = T // K
            split = [
                x[:, : n * K].reshape(B, n, K, *x.shape[2:]).swapaxes(0, 1)
                for x in (b.inputs, b.targets, b.mask, b.resets)
            ]

            def body(state, chunk):
                model, opt_state, carry = state
                (_, (carry, hit)), g = eqx.filter_value_and_grad(
                    chunk_loss, has_aux=True
                )(model, carry, *chunk)
                model, opt_state = apply(model, opt_state, g)
                return (model, opt_state, carry), hit.sum()

            (model, opt_state, _), hits = jax.lax.scan(
                body, (model, opt_state, carry0), split
            )
            return model, opt_state, hits.sum() / b.mask[:, : n * K].sum(), n

        @eqx.filter_jit
        def evaluate(model, key):
            b = copy_task_batch(key, B, cfg.max_length)
            logits, _ = outputs(model, carry0, b.inputs, b.resets, "bptt")
            hit = (jnp.argmax(logits, -1) == b.targets) * b.mask
            return hit.sum() / b.mask.sum()

        per_batch = B * T
        num_batches = max(1, -(-frames // per_batch))
        writer = TensorBoardWriter(str(run_dir))
        curve, updates = [], 0
        for i in range(num_batches):
            k_data, k = jax.random.split(k_data)
            model, opt_state, acc, n = train_batch(model, opt_state, k)
            updates += int(n)
            if (i + 1) % max(1, num_batches // 100) == 0 or i + 1 == num_batches:
                f = (i + 1) * per_batch
                curve.append([f, float(acc)])
                writer.write(f, {"accuracy": float(acc)})
        writer.close()
        keys = jax.random.split(k_eval, exp.eval_episodes)
        score = float(np.mean([float(evaluate(model, k)) for k in keys]))
        done = num_batches * per_batch
    else:
        import rtrl_envs
        from rtrl_envs._memory import discounted_returns

        env = rtrl_envs.make(
            exp.env.name, num_envs=B, seed=seed, **dict(exp.env.options)
        )
        gamma = cfg.discount

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
        def train_chunk(model, opt_state, carry, env_state, ts):
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
            return model, opt_state, carry, env_state, ts_new, loss

        env_state, ts = env.reset(k_data)
        carry = carry0
        num_updates = max(1, -(-frames // (B * K)))
        writer = TensorBoardWriter(str(run_dir))
        curve = []
        every = max(1, num_updates // 100)
        for i in range(num_updates):
            model, opt_state, carry, env_state, ts, loss = train_chunk(
                model, opt_state, carry, env_state, ts
            )
            if (i + 1) % every == 0:
                f = (i + 1) * B * K
                curve.append([f, float(loss)])
                writer.write(f, {"td_loss": float(loss)})
        writer.close()
        updates, done = num_updates, num_updates * B * K
        score = _trace_error(model, env, k_eval, gamma, outputs, discounted_returns)
    (run_dir / "curve.json").write_text(json.dumps(curve))
    train_score = float(np.mean([c[1] for c in curve[-max(1, len(curve) // 10) :]]))
    return updates, done, score, train_score, exp.eval_episodes, curve


def _trace_error(model, env, key, gamma, outputs, discounted_returns, steps=2000):
    """Mean squared error of the predictions vs the true discounted returns."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

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
    g = discounted_returns(cum, gamma).swapaxes(0, 1)
    # Drop the first 200 steps (warm-up) and the last 200 (truncated returns).
    err = (v[..., 0] - g)[:, 200:-200]
    return float(jnp.mean(err**2))
