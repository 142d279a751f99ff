"""PPO on an RTRL core (Elelimy et al. 2024's recipe)."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Int, PRNGKeyArray

import rtrl_cells as rc

from ._config import PPOConfig
from ._core import (
    AbstractOptimizedState,
    Agent,
    Carry,
    Hyperparams,
    Metrics,
    Trajectory,
    actor_critic_agent,
    actor_step,
    apply_gradients,
    check_config,
    hyperparams,
    network_factory,
)
from ._losses import gae, ppo_clip_loss, ppo_value_loss, transitions
from ._networks import ActorCriticNet
from ._normalize import (
    RewardScaler,
    RunningMeanStd,
    normalize,
    reward_scaler_init,
    running_mean_std_init,
    running_mean_std_update,
    scale_rewards,
)


class PPOState(AbstractOptimizedState):
    """PPO's state.

    Attributes:
        params: the network.
        opt_state: Adam's moments (and the clip's state).
        hyperparams: the step size.
        update_count: updates (rollouts learned from) applied.
        key: the minibatch shuffling key.
        obs_rms: running observation moments (``None`` if
            ``normalize_observations`` is off).
        reward_scaler: per-stream discounted returns and their running moments
            (``None`` if ``normalize_rewards`` is off).
    """

    params: ActorCriticNet
    hyperparams: Hyperparams
    update_count: Int[Array, ""]
    opt_state: optax.OptState
    key: Array
    obs_rms: RunningMeanStd | None
    reward_scaler: RewardScaler | None


class PPOExtras(NamedTuple):
    """What PPO's actor records per step."""

    policy: Array
    """Behaviour policy parameters."""
    value: Array
    """``V(x_t)`` under the behaviour parameters."""
    carry: Carry
    """The core carry from *before* step ``t``, as the learner reads it
    (``ActorCriticNet.stored_carry``): the state, and the RTRL traces only where
    a sequence may start at ``t`` from the stored traces (RTRL methods, stale
    traces, more than one sequence per rollout, ``stale_traces="store"`` or a
    core the learner cannot recompute them for); otherwise the state alone,
    which the bootstrap value reads (a sequence starting at step 0 starts from
    ``Trajectory.carry_0``)."""
    update_count: Array
    """The acting state's ``update_count``: a learner that recomputes the
    stale traces checks that it acted with the parameters it updates from."""


class _ActorInput(NamedTuple):
    observation: Array
    reward: Array
    first: Array


class PPOMinibatch(NamedTuple):
    """``N`` training sequences of ``L`` steps (what :func:`ppo_loss` takes).

    Attributes:
        carry_0: ``(N, ...)`` the carry before each sequence's first step.
        observation: ``(N, L, *obs_shape)`` (normalised).
        reward: ``(N, L)`` the reward input that arrived with each observation.
        first: ``(N, L)`` bool.
        action: ``(N, L, ...)``.
        logp_old: ``(N, L)`` the behaviour policy's log-probabilities.
        advantage: ``(N, L)``.
        return_: ``(N, L)`` value targets.
        value_old: ``(N, L)`` the values the targets were computed with (the
            value clip's centre).
        mask: ``(N, L)`` 1 for real transitions.
    """

    carry_0: Carry
    observation: Array
    reward: Array
    first: Array
    action: Array
    logp_old: Array
    advantage: Array
    return_: Array
    value_old: Array
    mask: Array


def ppo_loss(
    net: ActorCriticNet,
    minibatch: PPOMinibatch,
    config: PPOConfig,
    method: Any = None,
) -> tuple[Array, Metrics]:
    """PPO's loss on a minibatch of sequences, each re-run from its carry.

    ``clip + value_cost * value_loss - entropy_cost * H``, averaged over the real
    transitions, with :func:`ppo_value_loss` clipped when ``config.clip_value``;
    advantages standardised over the minibatch when ``config.normalize_advantages``.
    ``method`` overrides the network's unroll method (``rtrl_cells.BPTT.to_carry()``:
    the gradient also reaches ``minibatch.carry_0``'s states).

    Returns:
        ``(total, metrics)``: ``loss``, ``policy_loss``, ``value_loss``,
        ``entropy``, ``clip_fraction``.
    """

    def one(c0, obs, rew, first, action):
        p, v, _ = net.unroll(c0, obs, rew, first, method=method)
        logp = jax.vmap(net.policy.log_prob)(p, action)
        return logp, v, jax.vmap(net.policy.entropy)(p)

    mb = minibatch
    logp, v, ent = jax.vmap(one)(
        mb.carry_0, mb.observation, mb.reward, mb.first, mb.action
    )
    logp, v, ent, logp_old, adv, ret, v_old, mask = (
        x.reshape(-1)
        for x in (
            logp,
            v,
            ent,
            mb.logp_old,
            mb.advantage,
            mb.return_,
            mb.value_old,
            mb.mask,
        )
    )
    n = jnp.maximum(jnp.sum(mask), 1.0)
    if config.normalize_advantages:
        mean = jnp.sum(mask * adv) / n
        std = jnp.sqrt(jnp.sum(mask * (adv - mean) ** 2) / n)
        adv = (adv - mean) / (std + 1e-8)
    ratio = jnp.exp(logp - logp_old)
    pg = jnp.sum(mask * ppo_clip_loss(ratio, adv, config.clip_eps)) / n
    value_clip = config.clip_eps if config.clip_value else None
    vl = jnp.sum(mask * ppo_value_loss(v, v_old, ret, value_clip)) / n
    en = jnp.sum(mask * ent) / n
    total = pg + config.value_cost * vl - config.entropy_cost * en
    clipfrac = jnp.sum(mask * (jnp.abs(ratio - 1.0) > config.clip_eps)) / n
    return total, {
        "loss": total,
        "policy_loss": pg,
        "value_loss": vl,
        "entropy": en,
        "clip_fraction": clipfrac,
    }


def _rerun(
    net: ActorCriticNet, L: int, carry_0, obs, reward, first
) -> tuple[Carry, Array, Array]:
    """Re-runs one stream's rollout with ``net`` (``traces="refresh"``).

    Args:
        net: the current parameters.
        L: the sequence length (it divides ``T``).
        carry_0: the carry before the rollout.
        obs, reward, first: the rollout's ``T + 1`` steps.

    Returns:
        ``(starts, values, v_T)``: the stored carry before each of the ``T /
        L`` sequences, ``V(x_t)`` for ``t < T``, and the bootstrap value
        ``V(x_T)``. The traces are advanced only as far as a sequence start
        reads them: the last sequence steps its states alone.
    """
    T = first.shape[0] - 1
    n = T // L

    def step(method, c, inp):
        o, r, f = inp
        _, v, c = net.step(c, o, r, f, method=method)
        return c, v

    def sequence(c, inp):
        c_end, v = jax.lax.scan(partial(step, None), c, inp)
        return c_end, (c, v)

    def split(x, lo, hi, shape):
        return x[lo:hi].reshape(*shape, *x.shape[1:])

    xs = (obs, reward, first)
    head = jax.tree.map(lambda x: split(x, 0, (n - 1) * L, (n - 1, L)), xs)
    c, (starts, v_head) = jax.lax.scan(sequence, net.stored_carry(carry_0), head)
    starts = jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), starts, c)
    last = jax.tree.map(lambda x: split(x, (n - 1) * L, T, (L,)), xs)
    c_T, v_last = jax.lax.scan(
        partial(step, rc.BPTT), net.stored_carry(c, rc.BPTT), last
    )
    _, v_T = step(rc.BPTT, c_T, (obs[T], reward[T], first[T]))
    values = jnp.concatenate([v_head.reshape(-1), v_last])
    return starts, jax.lax.stop_gradient(values), jax.lax.stop_gradient(v_T)


def _bootstrap_value(net: ActorCriticNet, carries, obs, reward, first) -> Array:
    """``V(x_T)`` of one stream: two steps from the carry before step ``T - 1``
    (the states alone: values do not read the traces)."""
    last_c = net.stored_carry(jax.tree.map(lambda x: x[-1], carries), rc.BPTT)
    _, _, c = net.step(last_c, obs[-2], reward[-2], first[-2], method=rc.BPTT)
    _, v_last, _ = net.step(c, obs[-1], reward[-1], first[-1], method=rc.BPTT)
    return jax.lax.stop_gradient(v_last)


def recomputes_stale_traces(config: PPOConfig, net: Any) -> bool:
    """Whether PPO's learner recomputes the stale-trace term of ``net``'s core
    by a reverse pass over the rollout instead of storing each step's traces
    (``PPOConfig.stale_traces``): RTRL with stale traces and more than one
    sequence per rollout, a core whose traces are exact, and sequences whose
    inputs get BPTT gradients (one step, or ``chunked``), so that BPTT inside a
    sequence plus ``lambda_0 . E_0`` is the method's own gradient."""
    if config.traces != "stale" or config.stale_traces != "recompute":
        return False
    if config.sequence_length == config.rollout_length or net.core is None:
        return False
    m = rc.method(net.method)
    if not m.advances_traces or not net.core.exact_traces:
        return False
    return config.sequence_length == 1 or m is rc.CHUNKED


def ppo(
    config: PPOConfig, spec: Any, *, cell: rc.AbstractCell | None = None
) -> Agent[PPOState, PPOExtras]:
    """Proximal policy optimisation with an RTRL (or TBPTT, or no) core.

    The rollout is cut into sequences of ``sequence_length`` steps; each is
    re-run from the carry stored before its first step with the learner's
    method (:func:`ppo_loss`). With ``sequence_length=1`` and an RTRL core this
    is the RTU paper's recipe: single-step samples, each re-stepped from the
    stored state and traces, whose RTRL gradient reaches through the whole past
    via the traces. ``traces`` chooses whether those stored carries are the
    actor's (``"stale"``) or are recomputed with the current parameters before
    every epoch (``"refresh"``, which recomputes the values, advantages and
    value targets with them). The actor stores per step only what the learner
    reads: the state, and the traces too only where a sequence can start from
    them (RTRL, stale traces, ``sequence_length < rollout_length``); one
    sequence per rollout starts from the rollout's first carry. With
    ``stale_traces="recompute"`` (the default) the stale traces are not
    stored at all: each minibatch's trace term comes from one reverse pass
    over the rollout from its first carry (``PPOConfig.stale_traces`` says
    where that applies).

    Observations are normalised and rewards scaled by running statistics in the
    state (frozen during a rollout; ``update`` uses the same ones, then merges
    the rollout in).

    Args:
        config: the agent's configuration.
        spec: the environment's spec.
        cell: optionally, any rtrl-cells cell to use as the core.

    Returns:
        The agent.

    Raises:
        ValueError: (one line) a config of another type, sequences that do not
            split into the minibatches, or a network that cannot serve ``spec``.
    """
    check_config(config, PPOConfig, "ppo")
    num_envs = int(spec.num_envs)
    T, L = config.rollout_length, config.sequence_length
    num_seq = num_envs * T // L
    if num_seq % config.num_minibatches:
        raise ValueError(
            f"PPO: {num_seq} sequences per rollout (num_envs x rollout_length / "
            f"sequence_length) do not split into num_minibatches="
            f"{config.num_minibatches}; choose a divisor."
        )
    make_net = network_factory(config, spec, cell)
    recompute = recomputes_stale_traces(
        config, eqx.filter_eval_shape(make_net, jax.random.PRNGKey(0))
    )
    # Where the learner starts a sequence from a stored per-step carry (stale
    # traces, more than one sequence per stream) the actor stores the traces
    # too, unless the learner recomputes their term; otherwise each step's
    # state alone (the bootstrap value's), and a single sequence starts from
    # the rollout's first carry.
    stores_traces = config.traces == "stale" and L < T and not recompute
    store_method = None if stores_traces else rc.BPTT
    # The step size is applied from the state (apply_gradients).
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.scale_by_adam(eps=config.adam_eps),
    )

    def init(key: PRNGKeyArray) -> PPOState:
        k_net, k_shuffle = jax.random.split(key)
        net = make_net(k_net)
        opt_state = optimizer.init(eqx.filter(net, eqx.is_inexact_array))
        dtype = jnp.zeros(()).dtype
        obs_rms = (
            running_mean_std_init(tuple(spec.observation_shape), dtype=dtype)
            if config.normalize_observations
            else None
        )
        scaler = (
            reward_scaler_init(num_envs, dtype) if config.normalize_rewards else None
        )
        return PPOState(
            params=net,
            hyperparams=hyperparams(config.learning_rate),
            update_count=jnp.zeros((), jnp.int32),
            opt_state=opt_state,
            key=k_shuffle,
            obs_rms=obs_rms,
            reward_scaler=scaler,
        )

    def normalize_obs(state: PPOState, obs: Array) -> Array:
        if state.obs_rms is None:
            return obs
        return normalize(
            state.obs_rms, obs, config.observation_clip, config.normalize_eps
        )

    def act(
        state: PPOState,
        carry: Carry,
        timestep: Any,
        key: PRNGKeyArray,
        greedy: bool = False,
    ) -> tuple[Array, Carry, PPOExtras]:
        ts = _ActorInput(
            normalize_obs(state, jnp.asarray(timestep.observation)),
            jnp.asarray(timestep.reward),
            jnp.asarray(timestep.first),
        )
        action, new_carry, out = actor_step(state.params, carry, ts, key, greedy)
        stored = jax.vmap(partial(state.params.stored_carry, method=store_method))(
            carry
        )
        count = jnp.broadcast_to(state.update_count, out.value.shape)
        return action, new_carry, PPOExtras(out.policy, out.value, stored, count)

    def merge_statistics(
        state: PPOState, batch: Trajectory
    ) -> tuple[Array, RunningMeanStd | None, RewardScaler | None]:
        """The learner's rewards, and the statistics with the rollout merged in
        (each observation counted once: the last is the next rollout's first)."""
        obs_rms = state.obs_rms
        if obs_rms is not None:
            seen = batch.observation[:, :-1]
            obs_rms = running_mean_std_update(
                obs_rms, seen.reshape(-1, *seen.shape[2:])
            )
        reward = batch.reward
        scaler = state.reward_scaler
        if scaler is not None:
            mask = 1.0 - (batch.terminated[:, :-1] | batch.truncated[:, :-1])
            scaled, scaler = scale_rewards(
                scaler,
                batch.reward[:, 1:],
                batch.first[:, :-1],
                config.discount,
                mask,
                config.normalize_eps,
            )
            reward = jnp.concatenate([reward[:, :1].astype(scaled.dtype), scaled], 1)
        return reward, obs_rms, scaler

    def advantages(values: Array, v_last: Array, batch: Trajectory, reward: Array):
        """GAE advantages, returns and masks, ``(B, T)`` each, from the values
        ``(B, T)`` of the rollout's steps and the bootstrap values ``(B,)``."""
        values_1 = jnp.concatenate([values, v_last[:, None]], 1)

        def one(rw, term, trunc, vals):
            tr = transitions(rw, term, trunc, config.discount, config.reward_clip)
            adv = gae(tr.r_t, tr.discount_t, vals, config.gae_lambda, tr.mask_t)
            return adv, tr.mask_t

        adv, mask = jax.vmap(one)(reward, batch.terminated, batch.truncated, values_1)
        return adv, adv + values, mask

    def sequences(starts: Carry, batch: Trajectory, logp_old, adv, ret, values, mask):
        """The rollout as ``num_seq`` sequences of ``L`` steps, from the carries
        ``(B, T / L, ...)`` before them."""

        def cut(x):
            return x.reshape(x.shape[0] * (T // L), L, *x.shape[2:])

        return PPOMinibatch(
            jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), starts),
            cut(batch.observation[:, :-1]),
            cut(batch.reward[:, :-1]),
            cut(batch.first[:, :-1]),
            cut(batch.action),
            cut(logp_old),
            cut(adv),
            cut(ret),
            cut(values),
            cut(mask),
        )

    def minibatch_step(state: PPOState, mb: PPOMinibatch, trace_term):
        if trace_term is None:
            (loss, metrics), grads = eqx.filter_value_and_grad(ppo_loss, has_aux=True)(
                state.params, mb, config
            )
        else:
            # BPTT in each sequence, its gradient reaching the stored states
            # (lambda); the stale traces' lambda . E from the behaviour rollout.
            def loss_of(params_and_carry):
                params, carry_0 = params_and_carry
                mb_c = mb._replace(carry_0=carry_0)
                return ppo_loss(params, mb_c, config, method=rc.BPTT.to_carry())

            (loss, metrics), (grads, lam) = eqx.filter_value_and_grad(
                loss_of, has_aux=True
            )((state.params, mb.carry_0))
            grads = jax.tree.map(jnp.add, grads, trace_term(lam))
        lr = state.hyperparams.learning_rate
        state, guard = apply_gradients(state, grads, optimizer, lr, loss)
        return state, {**metrics, **guard}

    def update(state: PPOState, batch: Trajectory) -> tuple[PPOState, Metrics]:
        """``num_epochs`` passes of ``num_minibatches`` Adam steps over a rollout."""
        reward, obs_rms, scaler = merge_statistics(state, batch)
        # Normalised with the statistics the actor used.
        batch = batch._replace(observation=normalize_obs(state, batch.observation))
        net = state.params
        logp_old = jax.vmap(jax.vmap(net.policy.log_prob))(
            batch.extras.policy, batch.action
        )
        if config.traces == "stale":
            carries, values = batch.extras.carry, batch.extras.value
            if L == T:
                # One sequence per stream: from the rollout's first carry.
                starts = jax.tree.map(
                    lambda x: x[:, None], jax.vmap(net.stored_carry)(batch.carry_0)
                )
            else:
                starts = jax.tree.map(lambda x: x[:, ::L], carries)
            v_last = jax.vmap(partial(_bootstrap_value, net))(
                carries, batch.observation, batch.reward, batch.first
            )
            stale = (starts, values, *advantages(values, v_last, batch, reward))
        trace_term_of = None
        if recompute:
            trace_term_of = _stale_trace_term(net, state.update_count, batch)

        def epoch(st: PPOState, key: PRNGKeyArray):
            if config.traces == "refresh":
                # Carries, values and so the targets under the current parameters.
                starts, values, v_last = jax.vmap(partial(_rerun, st.params, L))(
                    batch.carry_0, batch.observation, batch.reward, batch.first
                )
                adv, ret, mask = advantages(values, v_last, batch, reward)
            else:
                starts, values, adv, ret, mask = stale
            data = sequences(starts, batch, logp_old, adv, ret, values, mask)
            perm = jax.random.permutation(key, num_seq)

            def gathered_step(st: PPOState, idx: Array):
                # Each minibatch gathered when it is used: a permuted copy of
                # every stored carry at once (their RTRL traces: the bulk of
                # the rollout's memory) would be a second copy of them all.
                mb = jax.tree.map(lambda x: x[idx], data)
                term = None if trace_term_of is None else partial(trace_term_of, idx)
                return minibatch_step(st, mb, term)

            idx = perm.reshape(config.num_minibatches, -1)
            return jax.lax.scan(gathered_step, st, idx)

        key, k_epochs = jax.random.split(state.key)
        trained, metrics = jax.lax.scan(
            epoch, state, jax.random.split(k_epochs, config.num_epochs)
        )
        new_state = dataclasses.replace(
            trained,
            update_count=state.update_count + 1,
            key=key,
            obs_rms=obs_rms,
            reward_scaler=scaler,
        )
        out = {
            k: jnp.max(v) if k.startswith("nonfinite") else jnp.mean(v)
            for k, v in metrics.items()
        }
        out["learning_rate"] = state.hyperparams.learning_rate
        if scaler is not None:
            out["reward_scale"] = jnp.sqrt(scaler.return_rms.var + config.normalize_eps)
        return new_state, out

    def _stale_trace_term(net: ActorCriticNet, update_count: Array, batch):
        """``(idx, lam) -> gradient``: the stale traces' term of the minibatch
        of sequences ``idx`` whose stored states have the adjoints ``lam``,
        ``sum lambda . E`` along the behaviour rollout: a VJP of the states
        before each step (``ActorCriticNet.states_before``, with ``net``, the
        parameters that acted, checked by the recorded update count), whose
        forward pass is taken once per update."""
        lag = jnp.any(batch.extras.update_count != update_count)
        inputs = jax.vmap(net.trace_inputs)(
            batch.observation[:, :T], batch.reward[:, :T]
        )
        inputs = eqx.error_if(
            inputs,
            lag,
            "PPO recomputes the stale traces with the parameters it updates "
            "from, but this rollout was acted with others (actors that lag the "
            "learner): use PPOConfig(stale_traces='store').",
        )
        first = batch.first[:, :T]
        _, states_vjp = eqx.filter_vjp(
            lambda n: jax.vmap(n.states_before)(batch.carry_0, inputs, first), net
        )

        def term(idx: Array, lam: Carry):
            stream, start = idx // (T // L), (idx % (T // L)) * L

            def scatter(c):
                full = jnp.zeros((num_envs, T, *c.shape[1:]), c.dtype)
                return full.at[stream, start].add(c)

            (grads,) = states_vjp(jax.tree.map(scatter, lam))
            return grads

        return term

    return actor_critic_agent(
        config, spec, init, update, act, per_stream_state=config.normalize_rewards
    )
