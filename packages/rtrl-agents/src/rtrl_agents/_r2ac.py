"""R2AC (Irie et al. 2024): IMPALA's V-trace actor-critic on an RTRL core."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Int, PRNGKeyArray

import rtrl_cells as rc

from ._config import R2ACConfig
from ._core import (
    AbstractOptimizedState,
    ActorOutput,
    Agent,
    Hyperparams,
    Metrics,
    Trajectory,
    actor_critic_agent,
    apply_gradients,
    check_config,
    hyperparams,
    network_factory,
    per_stream,
)
from ._losses import ActorCriticLosses, transitions, vtrace_actor_critic_loss
from ._networks import ActorCriticNet


class R2ACState(AbstractOptimizedState):
    """R2AC's state.

    Attributes:
        params: the network.
        opt_state: RMSProp's moments (and the clip's state).
        hyperparams: the base step size.
        update_count: updates applied (the step-size decay is a function of it).
    """

    params: ActorCriticNet
    hyperparams: Hyperparams
    update_count: Int[Array, ""]
    opt_state: optax.OptState


def linear_decay(count: Array, total: int | None) -> Array:
    """The seed's step-size factor: ``1 - count / total``, clipped to [0, 1]
    (1 when ``total`` is ``None``)."""
    if total is None:
        return jnp.ones((), jnp.float32)
    return jnp.clip(1.0 - count / total, 0.0, 1.0)


def r2ac_stream_loss(
    net: ActorCriticNet,
    policy_params: Array,
    values: Array,
    action: Array,
    behaviour_policy: Array,
    reward: Array,
    terminated: Array,
    truncated: Array,
    config: R2ACConfig,
) -> ActorCriticLosses:
    """The seed's losses for one stream from the network's outputs on ``T + 1``
    steps: ``(policy, baseline, entropy)``, each summed over time.

    Args:
        net: the network (its policy head's distribution functions).
        policy_params: ``(T + 1, P)`` the learner's policy outputs.
        values: ``(T + 1,)`` the learner's values (the last bootstraps).
        action: ``(T, ...)`` the actions taken.
        behaviour_policy: ``(T, P)`` the actor's policy outputs.
        reward, terminated, truncated: ``(T + 1,)`` as in a Trajectory.
        config: discount, reward clip and V-trace clips.
    """
    tr = transitions(reward, terminated, truncated, config.discount, config.reward_clip)
    logp = jax.vmap(net.policy.log_prob)(policy_params[:-1], action)
    mu_logp = jax.vmap(net.policy.log_prob)(behaviour_policy, action)
    ent = jax.vmap(net.policy.entropy)(policy_params[:-1])
    return vtrace_actor_critic_loss(
        logp,
        ent,
        mu_logp,
        values[:-1],
        values[1:],
        tr.r_t,
        tr.discount_t,
        tr.mask_t,
        clip_rho=config.clip_rho,
        clip_c=config.clip_c,
        clip_pg_rho=config.clip_pg_rho,
    )


def r2ac_loss(
    net: ActorCriticNet, batch: Trajectory, config: R2ACConfig
) -> tuple[Array, Metrics]:
    """R2AC's total loss on a batch of rollouts, and its parts.

    Re-runs torso and core from each stream's ``carry_0`` with the network's
    method (exact RTRL from the carried traces, or TBPTT), then sums
    :func:`r2ac_stream_loss` over streams: ``policy + baseline_cost * baseline
    + entropy_cost * entropy``. Differentiate it with ``eqx.filter_grad``.

    Args:
        net: the learner's network.
        batch: ``B`` rollouts of ``T + 1`` steps whose ``extras.policy`` are the
            behaviour policy's outputs.
        config: the agent's config.

    Returns:
        ``(total, metrics)``: ``loss``, ``policy_loss``, ``baseline_loss``,
        ``entropy`` (mean over the real transitions).
    """

    def one(c0, obs, rew, first, term, trunc, action, behaviour):
        p, v, _ = net.unroll(c0, obs, rew, first)
        return r2ac_stream_loss(net, p, v, action, behaviour, rew, term, trunc, config)

    parts = per_stream(one, batch, batch.extras.policy)
    pg, bl, ent = (jnp.sum(x) for x in parts)
    total = pg + config.baseline_cost * bl + config.entropy_cost * ent
    valid = jnp.maximum(
        jnp.sum(1.0 - (batch.terminated[:, :-1] | batch.truncated[:, :-1])), 1.0
    )
    return total, {
        "loss": total,
        "policy_loss": pg,
        "baseline_loss": bl,
        "entropy": -ent / valid,
    }


def r2ac(
    config: R2ACConfig, spec: Any, *, cell: rc.AbstractCell | None = None
) -> Agent[R2ACState, ActorOutput]:
    """IMPALA's V-trace actor-critic with an RTRL (or TBPTT, or no) core.

    * ``act`` steps the core online: RTRL cores advance their traces with the
      actor's parameters, resetting them at episode starts.
    * ``update`` re-runs torso and core from the carry stored before the rollout
      (state and traces) with the current parameters (:func:`r2ac_loss`). With
      ``method="rtrl"`` or ``"rtrl-online"`` the core's gradient is exact RTRL:
      never truncated. With ``"tbptt"`` it stops at the rollout start. The torso
      gets BPTT gradients through the core, truncated at the rollout start (as
      in the seed).
    * Losses summed over time and batch; RMSProp with a linearly decaying step
      size (held in the state) and a global-norm clip, as in the seed.

    The jitted loop acts with the parameters of the previous update, so the
    behaviour policy never lags the learner by more than one update; V-trace
    corrects the difference.

    Args:
        config: the agent's configuration.
        spec: the environment's spec (``observation_shape``, ``action_space``,
            ``num_envs``).
        cell: optionally, any rtrl-cells cell to use as the core (it must be
            what ``config`` describes).

    Returns:
        The agent.

    Raises:
        ValueError: (one line) a config of another type, or a network that
            cannot serve ``spec``.
    """
    check_config(config, R2ACConfig, "r2ac")
    make_net = network_factory(config, spec, cell)
    # The step size is applied from the state (apply_gradients).
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.scale_by_rms(
            decay=config.rms_decay, eps=config.rms_eps, eps_in_sqrt=False
        ),
    )

    def init(key: PRNGKeyArray) -> R2ACState:
        net = make_net(key)
        opt_state = optimizer.init(eqx.filter(net, eqx.is_inexact_array))
        return R2ACState(
            params=net,
            hyperparams=hyperparams(config.learning_rate),
            update_count=jnp.zeros((), jnp.int32),
            opt_state=opt_state,
        )

    def update(state: R2ACState, batch: Trajectory) -> tuple[R2ACState, Metrics]:
        (loss, metrics), grads = eqx.filter_value_and_grad(r2ac_loss, has_aux=True)(
            state.params, batch, config
        )
        lr = state.hyperparams.learning_rate * linear_decay(
            state.update_count, config.decay_updates
        )
        new_state, guard = apply_gradients(state, grads, optimizer, lr, loss)
        return new_state, {**metrics, **guard, "learning_rate": lr}

    return actor_critic_agent(config, spec, init, update, reads_first_carry_only=True)
