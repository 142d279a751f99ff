"""Single-stream loss functions (RLax style): batch them with ``jax.vmap``.

Names carry their time index: ``v_tm1`` are the values of the states the actions
were taken in, ``v_t`` those of the states they led to, ``r_t`` and
``discount_t`` the rewards and discounts of those transitions. ``mask_t`` is 0
for a transition whose action was ignored (the step out of an episode's last
observation, under the auto-reset convention); such steps contribute nothing and
stop every backward recursion.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

_sg = jax.lax.stop_gradient


class Transitions(NamedTuple):
    """Per-transition quantities of one stream's trajectory of ``T + 1`` steps.

    Attributes:
        r_t: reward of transition ``s -> s+1``, shape ``(T,)``.
        discount_t: ``gamma * (1 - terminated_{s+1})``, shape ``(T,)``.
        mask_t: 0 where the action at ``s`` was ignored (``s`` was a last step).
    """

    r_t: Array
    discount_t: Array
    mask_t: Array


def transitions(
    reward: Float[Array, " T1"],
    terminated: Bool[Array, " T1"],
    truncated: Bool[Array, " T1"],
    discount: float,
    reward_clip: float | None = None,
) -> Transitions:
    """Rewards, discounts and masks of the ``T`` transitions of ``T + 1`` steps.

    Args:
        reward: ``reward[s]`` arrived with observation ``s`` (0 on first steps).
        terminated: episode ended naturally at ``s`` (value 0 beyond it).
        truncated: episode was cut at ``s`` (bootstrap from its value).
        discount: gamma.
        reward_clip: clip rewards to ``[-c, c]``; ``None`` leaves them.
    """
    r_t = reward[1:]
    if reward_clip is not None:
        r_t = jnp.clip(r_t, -reward_clip, reward_clip)
    discount_t = discount * (1.0 - terminated[1:].astype(r_t.dtype))
    mask_t = 1.0 - (terminated[:-1] | truncated[:-1]).astype(r_t.dtype)
    return Transitions(r_t, discount_t, mask_t)


class VTraceOutput(NamedTuple):
    """V-trace targets and policy-gradient advantages (no gradient flows)."""

    vs: Array
    """Value targets ``v_s`` for ``v_tm1``."""
    pg_advantage: Array
    """``rho_pg_s (r_s + discount_s q_{s+1} - V(x_s))`` with the bootstrap
    ``q_{s+1} = lambda v_{s+1} + (1 - lambda) V(x_{s+1})`` (``v_t[-1]`` at the end),
    as rlax's ``vtrace_td_error_and_advantage``."""


def vtrace(
    v_tm1: Float[Array, " T"],
    v_t: Float[Array, " T"],
    r_t: Float[Array, " T"],
    discount_t: Float[Array, " T"],
    rho_tm1: Float[Array, " T"],
    mask_t: Float[Array, " T"] | None = None,
    lambda_: float = 1.0,
    clip_rho: float = 1.0,
    clip_c: float = 1.0,
    clip_pg_rho: float = 1.0,
) -> VTraceOutput:
    """V-trace (Espeholt et al. 2018) for one stream.

    ``v_s = V(x_s) + sum_{k>=s} (prod_{i<k} gamma_i c_i) delta_k`` with
    ``delta_k = min(rho_k, rho_bar) (r_k + gamma_k V(x_{k+1}) - V(x_k))`` and
    ``c_i = lambda min(rho_i, c_bar)``, computed backwards. Masked steps have
    ``delta = 0`` and cut the recursion, so their target is their own value.
    The policy-gradient advantage bootstraps from ``lambda v_{s+1} + (1 -
    lambda) V(x_{s+1})``, as rlax does (with ``lambda = 1``, IMPALA's
    ``v_{s+1}``).

    Args:
        v_tm1: ``V(x_s)`` for ``s = 0 .. T-1``.
        v_t: ``V(x_{s+1})``.
        r_t: rewards.
        discount_t: discounts (0 at terminations).
        rho_tm1: importance ratios ``pi(a_s|x_s) / mu(a_s|x_s)``.
        mask_t: 1 for real transitions, 0 for ignored ones; default all 1.
        lambda_: trace-cutting mixing (1 in IMPALA).
        clip_rho: rho_bar.
        clip_c: c_bar.
        clip_pg_rho: clip of the policy-gradient importance weight.
    """
    v_tm1, v_t, rho_tm1 = _sg(v_tm1), _sg(v_t), _sg(rho_tm1)
    if mask_t is None:
        mask_t = jnp.ones_like(r_t)
    rho_c = jnp.minimum(rho_tm1, clip_rho)
    c_tm1 = lambda_ * jnp.minimum(rho_tm1, clip_c)
    delta = mask_t * rho_c * (r_t + discount_t * v_t - v_tm1)
    decay = mask_t * discount_t * c_tm1

    def body(acc, inp):
        delta_s, decay_s = inp
        acc = delta_s + decay_s * acc
        return acc, acc

    _, acc = jax.lax.scan(body, jnp.zeros_like(v_t[-1]), (delta, decay), reverse=True)
    vs = v_tm1 + acc
    # rlax's q_bootstrap: lambda mixes the next target with the next value.
    vs_next = jnp.concatenate(
        [lambda_ * vs[1:] + (1.0 - lambda_) * v_tm1[1:], v_t[-1:]]
    )
    pg_adv = (
        mask_t
        * jnp.minimum(rho_tm1, clip_pg_rho)
        * (r_t + discount_t * vs_next - v_tm1)
    )
    return VTraceOutput(_sg(vs), _sg(pg_adv))


class ActorCriticLosses(NamedTuple):
    """The three summed loss terms."""

    policy: Array
    baseline: Array
    entropy: Array


def vtrace_actor_critic_loss(
    logp_tm1: Float[Array, " T"],
    entropy_tm1: Float[Array, " T"],
    mu_logp_tm1: Float[Array, " T"],
    v_tm1: Float[Array, " T"],
    v_t: Float[Array, " T"],
    r_t: Float[Array, " T"],
    discount_t: Float[Array, " T"],
    mask_t: Float[Array, " T"],
    clip_rho: float = 1.0,
    clip_c: float = 1.0,
    clip_pg_rho: float = 1.0,
) -> ActorCriticLosses:
    """IMPALA's losses for one stream, **summed over time** (as the seed does).

    Returns ``policy = -sum pg_adv * log pi(a)``, ``baseline = 0.5 * sum (v_s -
    V)^2`` and ``entropy = -sum H(pi)``, each over unmasked steps; the caller
    weights them (the seed: 1, baseline cost, entropy cost).
    """
    rho_tm1 = jnp.exp(logp_tm1 - mu_logp_tm1)
    out = vtrace(
        v_tm1,
        v_t,
        r_t,
        discount_t,
        rho_tm1,
        mask_t,
        clip_rho=clip_rho,
        clip_c=clip_c,
        clip_pg_rho=clip_pg_rho,
    )
    policy = -jnp.sum(mask_t * out.pg_advantage * logp_tm1)
    baseline = 0.5 * jnp.sum(mask_t * (out.vs - v_tm1) ** 2)
    entropy = -jnp.sum(mask_t * entropy_tm1)
    return ActorCriticLosses(policy, baseline, entropy)


def gae(
    r_t: Float[Array, " T"],
    discount_t: Float[Array, " T"],
    values: Float[Array, " T1"],
    lambda_: float,
    mask_t: Float[Array, " T"] | None = None,
) -> Float[Array, " T"]:
    """Generalised advantage estimation (Schulman et al. 2016) for one stream.

    ``A_s = delta_s + gamma_s lambda A_{s+1}``, ``delta_s = r_s + gamma_s V_{s+1}
    - V_s``; masked steps get 0 and cut the recursion. ``values`` has ``T + 1``
    entries (the last bootstraps). No gradient flows.
    """
    values = _sg(values)
    if mask_t is None:
        mask_t = jnp.ones_like(r_t)
    delta = mask_t * (r_t + discount_t * values[1:] - values[:-1])
    decay = mask_t * discount_t * lambda_

    def body(acc, inp):
        d, k = inp
        acc = d + k * acc
        return acc, acc

    _, adv = jax.lax.scan(
        body, jnp.zeros_like(values[-1]), (delta, decay), reverse=True
    )
    return adv


def ppo_clip_loss(
    ratio_t: Float[Array, " B"], advantage_t: Float[Array, " B"], epsilon: float
) -> Float[Array, " B"]:
    """PPO's clipped surrogate, per sample: ``-min(rA, clip(r, 1-eps, 1+eps) A)``."""
    clipped = jnp.clip(ratio_t, 1.0 - epsilon, 1.0 + epsilon)
    return -jnp.minimum(ratio_t * advantage_t, clipped * advantage_t)


def ppo_value_loss(
    v_t: Float[Array, " B"],
    v_old_t: Float[Array, " B"],
    return_t: Float[Array, " B"],
    epsilon: float | None,
) -> Float[Array, " B"]:
    """PPO's value loss per sample, clipped around the behaviour value.

    ``0.5 max((v - R)^2, (v_old + clip(v - v_old, -eps, eps) - R)^2)``, as the
    RTU paper's released PPO and CleanRL's ``ppo_continuous_action.py`` compute it
    (with the ratio clip as ``eps``); ``epsilon=None`` gives the unclipped
    ``0.5 (v - R)^2``.

    Args:
        v_t: values under the parameters being trained.
        v_old_t: the values the targets were computed with (no gradient).
        return_t: value targets (no gradient).
        epsilon: the clip, or ``None``.
    """
    unclipped = (v_t - return_t) ** 2
    if epsilon is None:
        return 0.5 * unclipped
    v_old_t = _sg(v_old_t)
    clipped = (v_old_t + jnp.clip(v_t - v_old_t, -epsilon, epsilon) - return_t) ** 2
    return 0.5 * jnp.maximum(unclipped, clipped)


def obgd_scale(
    delta: Array, trace_l1: Array, learning_rate: Array, kappa: float
) -> Array:
    """ObGD's step size (Elsayed et al. 2024): never overshoot the TD error.

    ``lr / max(1, lr * kappa * max(|delta|, 1) * ||z||_1)``.
    """
    bound = learning_rate * kappa * jnp.maximum(jnp.abs(delta), 1.0) * trace_l1
    return learning_rate / jnp.maximum(bound, 1.0)


def eligibility_trace(
    z_tm1: Any, grad_t: Any, decay_t: Array, mask_t: Array | float = 1.0
) -> Any:
    """One step of an accumulating eligibility trace over a pytree of parameters.

    ``z_t = mask_t * (decay_t * z_tm1 + grad_t)``: the TD(lambda) trace
    (``decay_t = gamma lambda``, 0 where an episode starts, which clears it);
    ``mask_t = 0`` (a transition whose action was ignored) clears it and adds
    nothing. The one trace update of the streaming actor-critic and the TD
    predictor.

    Args:
        z_tm1: the previous trace (a pytree).
        grad_t: the gradient to accumulate (the same pytree).
        decay_t: the decay (a scalar).
        mask_t: 1 for a real transition, 0 for an ignored one.
    """
    return jax.tree.map(lambda z, g: mask_t * (decay_t * z + g), z_tm1, grad_t)
