"""Observation normalisation and reward scaling as pure functions over state.

The RTU paper's PPO recipe (Elelimy et al. 2024, after gym's ``NormalizeObservation``
and ``NormalizeReward``): observations are standardised by a running mean and
variance, rewards are divided by the running standard deviation of the
discounted return. Here the statistics are explicit arrays (no hidden mutation):
an agent carries them in its state, so checkpoints hold them and a resumed run
continues exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike


class RunningMeanStd(NamedTuple):
    """Running moments of a stream of samples (Chan et al.'s parallel merge).

    Attributes:
        mean: per-feature mean.
        var: per-feature (population) variance.
        count: the number of samples merged so far (gym starts it at ``1e-4``
            with ``mean=0, var=1``).
    """

    mean: Array
    var: Array
    count: Array


def running_mean_std_init(
    shape: tuple[int, ...] = (), count: float = 1e-4, dtype=jnp.float32
) -> RunningMeanStd:
    """The prior of gym's ``RunningMeanStd``: mean 0, variance 1, ``count``."""
    return RunningMeanStd(
        jnp.zeros(shape, dtype), jnp.ones(shape, dtype), jnp.asarray(count, dtype)
    )


def running_mean_std_update(
    rms: RunningMeanStd, x: ArrayLike, mask: ArrayLike | None = None
) -> RunningMeanStd:
    """Merges the samples ``x`` (leading axis: samples) into ``rms``.

    The result equals the moments of all samples seen so far whatever the
    batching (the parallel-variance merge is exact), so one merge per rollout
    gives the statistics that one merge per step would.

    Args:
        rms: the running moments.
        x: samples, shape ``(N, *rms.mean.shape)``.
        mask: optional ``(N,)`` weights in ``{0, 1}``; masked samples are skipped.

    Returns:
        The updated moments (unchanged if no sample counts).
    """
    x = jnp.asarray(x, rms.mean.dtype)
    w = jnp.ones(x.shape[:1], x.dtype) if mask is None else jnp.asarray(mask, x.dtype)
    wb = w.reshape(w.shape + (1,) * (x.ndim - 1))
    n = jnp.sum(w)
    safe_n = jnp.maximum(n, 1.0)
    b_mean = jnp.sum(wb * x, 0) / safe_n
    b_var = jnp.sum(wb * (x - b_mean) ** 2, 0) / safe_n
    total = rms.count + n
    delta = b_mean - rms.mean
    mean = rms.mean + delta * n / total
    m2 = rms.var * rms.count + b_var * n + delta**2 * rms.count * n / total
    var = m2 / total
    keep = n > 0
    return RunningMeanStd(
        jnp.where(keep, mean, rms.mean),
        jnp.where(keep, var, rms.var),
        jnp.where(keep, total, rms.count),
    )


def normalize(
    rms: RunningMeanStd, x: ArrayLike, clip: float | None = None, eps: float = 1e-8
) -> Array:
    """``(x - mean) / sqrt(var + eps)``, clipped to ``[-clip, clip]`` if given."""
    y = (jnp.asarray(x, rms.mean.dtype) - rms.mean) / jnp.sqrt(rms.var + eps)
    return y if clip is None else jnp.clip(y, -clip, clip)


class RewardScaler(NamedTuple):
    """Reward scaling by the running std of the discounted return.

    Attributes:
        returns: each stream's running discounted return ``G`` (shape ``(B,)``).
        return_rms: running moments of every ``G`` seen.
    """

    returns: Array
    return_rms: RunningMeanStd


def reward_scaler_init(num_streams: int, dtype=jnp.float32) -> RewardScaler:
    """Zero returns and gym's prior moments."""
    return RewardScaler(jnp.zeros((num_streams,), dtype), running_mean_std_init())


def scale_rewards(
    scaler: RewardScaler,
    rewards: ArrayLike,
    starts: ArrayLike,
    discount: float,
    mask: ArrayLike | None = None,
    eps: float = 1e-8,
) -> tuple[Array, RewardScaler]:
    """Scales a rollout's rewards by the std of the discounted return.

    Per stream and step ``t``: ``G <- r_t`` if ``starts[t]`` (a new episode),
    else ``G <- discount * G + r_t``; every counted ``G`` is merged into the
    moments, and all rewards are divided by ``sqrt(var + eps)`` of the merged
    moments (gym's ``NormalizeReward``, with one merge per rollout). The mean is
    not subtracted.

    Args:
        scaler: the running returns and moments.
        rewards: ``(B, T)`` rewards.
        starts: ``(B, T)`` bool; the return restarts at these steps.
        discount: gamma of the discounted return.
        mask: ``(B, T)`` weights; steps with 0 leave ``G`` and the moments alone.
        eps: added to the variance.

    Returns:
        ``(scaled_rewards, scaler)``.
    """
    rewards = jnp.asarray(rewards, scaler.returns.dtype)
    m = jnp.ones_like(rewards) if mask is None else jnp.asarray(mask, rewards.dtype)

    def step(g, inp):
        r, s, mt = inp
        g_new = jnp.where(s, r, discount * g + r)
        g_new = jnp.where(mt > 0, g_new, g)
        return g_new, g_new

    g_T, gs = _scan_time(step, scaler.returns, (rewards, jnp.asarray(starts), m))
    rms = running_mean_std_update(scaler.return_rms, gs.reshape(-1), m.reshape(-1))
    scaled = rewards / jnp.sqrt(rms.var + eps)
    return scaled, RewardScaler(g_T, rms)


def _scan_time(f, init, xs):
    xs_t = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), xs)
    g_T, ys = jax.lax.scan(f, init, xs_t)
    return g_T, jnp.swapaxes(ys, 0, 1)
