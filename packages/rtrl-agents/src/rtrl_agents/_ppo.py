"""PPO on an RTRL core (Elelimy et al. 2024's recipe)."""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array

import rtrl_cells as rc

from ._config import PPOConfig
from ._core import (
    AbstractActorCritic,
    AgentState,
    Trajectory,
    actor_step,
    apply_if_finite,
    batched_initial_carry,
    injected_learning_rate,
)
from ._losses import gae, ppo_clip_loss, transitions
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


class PPOState(NamedTuple):
    """PPO's agent-specific state (``AgentState.extra``).

    Attributes:
        key: the minibatch shuffling key.
        obs_rms: running observation moments (``None`` if
            ``normalize_observations`` is off).
        reward_scaler: per-stream discounted returns and their running moments
            (``None`` if ``normalize_rewards`` is off).
    """

    key: Array
    obs_rms: RunningMeanStd | None
    reward_scaler: RewardScaler | None


class _ActorInput(NamedTuple):
    observation: Array
    reward: Array
    first: Array


class PPOExtras(NamedTuple):
    """What PPO's actor records per step."""

    policy: Array
    """Behaviour policy parameters."""
    value: Array
    """``V(x_t)`` under the behaviour parameters."""
    carry: Any
    """The core carry (state and RTRL traces) from *before* step ``t``."""


def _step_carries(net: ActorCriticNet, carry_0, obs, reward, first):
    """Re-runs one stream with ``net``: the carry before each step, and after."""

    def body(c, inp):
        o, r, f = inp
        _, _, c_new = net.step(c, o, r, f)
        return c_new, c

    return jax.lax.scan(body, carry_0, (obs, reward, first))


class PPO(AbstractActorCritic):
    """Proximal policy optimisation with an RTRL (or TBPTT, or no) core.

    The rollout is cut into sequences of ``sequence_length`` steps; each is
    re-run from the carry stored before its first step with the learner's method.
    With ``sequence_length=1`` and an RTRL core this is the RTU paper's recipe:
    single-step samples, each re-stepped from the stored state and traces, whose
    RTRL gradient reaches through the whole past via the traces. ``traces``
    chooses whether those stored carries are the actor's (``"stale"``) or are
    recomputed with the current parameters before every epoch (``"refresh"``).

    Args:
        config: the agent's configuration.
        spec: the environment's spec.
        cell: optionally, any rtrl-cells cell to use as the core.
    """

    config_type = PPOConfig

    def __init__(
        self, config: PPOConfig, spec: Any, *, cell: rc.AbstractCell | None = None
    ):
        if not isinstance(config, PPOConfig):
            raise ValueError(f"PPO needs a PPOConfig, got {type(config).__name__}.")
        num_seq = int(spec.num_envs) * config.rollout_length // config.sequence_length
        if num_seq % config.num_minibatches:
            raise ValueError(
                f"PPO: {num_seq} sequences per rollout (num_envs x rollout_length / "
                f"sequence_length) do not split into num_minibatches="
                f"{config.num_minibatches}; choose a divisor."
            )
        super().__init__(config, spec, cell=cell)
        self.rollout_length = config.rollout_length
        self._num_seq = num_seq
        self.optimizer = optax.chain(
            optax.clip_by_global_norm(config.max_grad_norm),
            optax.inject_hyperparams(optax.adam)(
                learning_rate=config.learning_rate, eps=config.adam_eps
            ),
        )

    def init(self, key: Array) -> AgentState:
        """Fresh parameters, optimizer state, shuffling key and normalisers."""
        cfg = self.config
        k_net, k_shuffle = jax.random.split(key)
        net = self._make_net(k_net)
        opt_state = self.optimizer.init(eqx.filter(net, eqx.is_inexact_array))
        dtype = jnp.zeros(()).dtype
        obs_rms = (
            running_mean_std_init(tuple(self.spec.observation_shape), dtype=dtype)
            if cfg.normalize_observations
            else None
        )
        scaler = (
            reward_scaler_init(self.num_envs, dtype) if cfg.normalize_rewards else None
        )
        extra = PPOState(k_shuffle, obs_rms, scaler)
        return AgentState(net, opt_state, jnp.zeros((), jnp.int32), extra)

    def _normalize_obs(self, state: AgentState, obs: Array) -> Array:
        rms = state.extra.obs_rms
        if rms is None:
            return obs
        cfg = self.config
        return normalize(rms, obs, cfg.observation_clip, cfg.normalize_eps)

    def initial_carry(self, state: AgentState) -> Any:
        """The batched carry at the start of every stream's first episode."""
        return batched_initial_carry(state.params, self.num_envs)

    def act(
        self, state: AgentState, carry: Any, timestep: Any, key: Array, greedy=False
    ):
        """Samples actions and steps the core; records the carry before the step.

        Observations are normalised with the state's statistics (frozen during a
        rollout; ``update`` uses the same ones, then merges the rollout in).
        """
        ts = _ActorInput(
            self._normalize_obs(state, jnp.asarray(timestep.observation)),
            jnp.asarray(timestep.reward),
            jnp.asarray(timestep.first),
        )
        action, new_carry, out = actor_step(state.params, carry, ts, key, greedy)
        return action, new_carry, PPOExtras(out.policy, out.value, carry)

    def _minibatch_loss(self, net: ActorCriticNet, mb):
        cfg = self.config

        def one(c0, obs, rew, first, action, old_logp, adv, ret, mask):
            p, v, _ = net.unroll(c0, obs, rew, first)
            logp = jax.vmap(net.policy.log_prob)(p, action)
            ent = jax.vmap(net.policy.entropy)(p)
            return logp - old_logp, v, ent, adv, ret, mask

        ratio_lp, v, ent, adv, ret, mask = jax.vmap(one)(*mb)
        ratio_lp, v, ent, adv, ret, mask = (
            x.reshape(-1) for x in (ratio_lp, v, ent, adv, ret, mask)
        )
        n = jnp.maximum(jnp.sum(mask), 1.0)
        if cfg.normalize_advantages:
            mean = jnp.sum(mask * adv) / n
            std = jnp.sqrt(jnp.sum(mask * (adv - mean) ** 2) / n)
            adv = (adv - mean) / (std + 1e-8)
        ratio = jnp.exp(ratio_lp)
        pg = jnp.sum(mask * ppo_clip_loss(ratio, adv, cfg.clip_eps)) / n
        vl = 0.5 * jnp.sum(mask * (v - ret) ** 2) / n
        en = jnp.sum(mask * ent) / n
        total = pg + cfg.value_cost * vl - cfg.entropy_cost * en
        clipfrac = jnp.sum(mask * (jnp.abs(ratio - 1.0) > cfg.clip_eps)) / n
        return total, {
            "loss": total,
            "policy_loss": pg,
            "value_loss": vl,
            "entropy": en,
            "clip_fraction": clipfrac,
        }

    def update(
        self, state: AgentState, batch: Trajectory
    ) -> tuple[AgentState, dict[str, Array]]:
        """``num_epochs`` passes of ``num_minibatches`` Adam steps over a rollout."""
        cfg = self.config
        net = state.params
        T, L = cfg.rollout_length, cfg.sequence_length
        ext: PPOState = state.extra
        # Normalise with the statistics the actor used, then merge the rollout's
        # observations (each counted once: the last is the next rollout's first).
        raw_obs = batch.observation
        batch = batch._replace(observation=self._normalize_obs(state, raw_obs))
        obs_rms = ext.obs_rms
        if obs_rms is not None:
            seen = raw_obs[:, :-1]
            obs_rms = running_mean_std_update(
                obs_rms, seen.reshape(-1, *seen.shape[2:])
            )
        learn_reward = batch.reward
        scaler = ext.reward_scaler
        if scaler is not None:
            mask_all = 1.0 - (batch.terminated[:, :-1] | batch.truncated[:, :-1])
            scaled, scaler = scale_rewards(
                scaler,
                batch.reward[:, 1:],
                batch.first[:, :-1],
                cfg.discount,
                mask_all,
                cfg.normalize_eps,
            )
            learn_reward = jnp.concatenate(
                [batch.reward[:, :1].astype(scaled.dtype), scaled], 1
            )
        obs, rew, first = (
            batch.observation[:, :-1],
            batch.reward[:, :-1],
            batch.first[:, :-1],
        )

        def bootstrap(extras_carry, obs_full, rew_full, first_full):
            last_c = jax.tree.map(lambda x: x[-1], extras_carry)
            _, _, c = net.step(last_c, obs_full[-2], rew_full[-2], first_full[-2])
            _, v_last, _ = net.step(c, obs_full[-1], rew_full[-1], first_full[-1])
            return jax.lax.stop_gradient(v_last)

        v_last = jax.vmap(bootstrap)(
            batch.extras.carry, batch.observation, batch.reward, batch.first
        )
        values = jnp.concatenate([batch.extras.value, v_last[:, None]], 1)

        def advantages(rw, term, trunc, vals):
            tr = transitions(rw, term, trunc, cfg.discount, cfg.reward_clip)
            adv = gae(tr.r_t, tr.discount_t, vals, cfg.gae_lambda, tr.mask_t)
            return adv, tr.mask_t

        adv, mask = jax.vmap(advantages)(
            learn_reward, batch.terminated, batch.truncated, values
        )
        ret = adv + batch.extras.value
        old_logp = jax.vmap(jax.vmap(net.policy.log_prob))(
            batch.extras.policy, batch.action
        )

        def to_seq(x):
            return x.reshape(x.shape[0] * (T // L), L, *x.shape[2:])

        def seq_starts(carries):
            return jax.tree.map(lambda x: x[:, ::L].reshape(-1, *x.shape[2:]), carries)

        def epoch(carry, key):
            st = carry
            if cfg.traces == "refresh":
                _, carries = jax.vmap(
                    lambda c0, o, r, f: _step_carries(st.params, c0, o, r, f)
                )(batch.carry_0, obs, rew, first)
            else:
                carries = batch.extras.carry
            data = (
                seq_starts(carries),
                to_seq(obs),
                to_seq(rew),
                to_seq(first),
                to_seq(batch.action),
                to_seq(old_logp),
                to_seq(adv),
                to_seq(ret),
                to_seq(mask),
            )
            perm = jax.random.permutation(key, self._num_seq)
            mbs = jax.tree.map(
                lambda x: x[perm].reshape(cfg.num_minibatches, -1, *x.shape[1:]), data
            )

            def minibatch(s, mb):
                (loss, metrics), grads = eqx.filter_value_and_grad(
                    self._minibatch_loss, has_aux=True
                )(s.params, mb)
                s, guard = apply_if_finite(s, grads, self.optimizer, loss)
                return s, {**metrics, **guard}

            return jax.lax.scan(minibatch, st, mbs)

        key, k_epochs = jax.random.split(ext.key)
        keys = jax.random.split(k_epochs, cfg.num_epochs)
        new_state, metrics = jax.lax.scan(epoch, state, keys)
        new_state = AgentState(
            new_state.params,
            new_state.opt_state,
            state.update_count + 1,
            PPOState(key, obs_rms, scaler),
        )
        out = {
            k: jnp.mean(v) for k, v in metrics.items() if not k.startswith("nonfinite")
        }
        for k in metrics:
            if k.startswith("nonfinite"):
                out[k] = jnp.max(metrics[k])
        out["learning_rate"] = injected_learning_rate(state.opt_state)
        if scaler is not None:
            out["reward_scale"] = jnp.sqrt(scaler.return_rms.var + cfg.normalize_eps)
        return new_state, out
