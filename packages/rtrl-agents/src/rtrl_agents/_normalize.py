"""Observation normalisation and reward scaling as pure functions over state.

The RTU paper's PPO recipe (Elelimy et al. 2024, after gym's ``NormalizeObservation``
and ``NormalizeReward``): observations are standardised by a running mean and
variance, rewards are divided by the running standard deviation of the
discounted return. The streaming agent's variants (Elsayed et al. 2024's
``SampleMeanStd``, ``ScaleReward`` and ``AddTimeInfo``) are updated every step:
:class:`SampleMoments`, :class:`ReturnScaler`, :func:`episode_time`. Here the
statistics are explicit arrays (no hidden mutation): an agent carries them in
its state, so checkpoints hold them and a resumed run continues exactly.
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
    mean, m2, total, keep = _merge_moments(
        rms.mean, rms.var * rms.count, rms.count, x, mask
    )
    return RunningMeanStd(
        jnp.where(keep, mean, rms.mean),
        jnp.where(keep, m2 / total, rms.var),
        total,
    )


def _merge_moments(
    mean_a: Array, m2_a: Array, n_a: Array, x: ArrayLike, mask: ArrayLike | None
) -> tuple[Array, Array, Array, Array]:
    """Chan et al.'s exact merge of ``(mean_a, m2_a, n_a)`` with the samples ``x``
    (leading axis: samples; ``mask``: optional ``(N,)`` weights in ``{0, 1}``).

    Returns ``(mean, m2, n, keep)``, ``m2`` the sum of squared deviations and
    ``keep`` whether any sample counted (if not, ``mean`` and ``m2`` are not
    meaningful; ``n`` is ``n_a``). One sample gives Welford's step.
    """
    x = jnp.asarray(x, mean_a.dtype)
    w = jnp.ones(x.shape[:1], x.dtype) if mask is None else jnp.asarray(mask, x.dtype)
    wb = w.reshape(w.shape + (1,) * (x.ndim - 1))
    n_b = jnp.sum(w)
    b_mean = jnp.sum(wb * x, 0) / jnp.maximum(n_b, 1.0)
    b_m2 = jnp.sum(wb * (x - b_mean) ** 2, 0)
    n = n_a + n_b
    delta = b_mean - mean_a
    safe_n = jnp.maximum(n, 1e-30)
    mean = mean_a + delta * (n_b / safe_n)
    m2 = m2_a + b_m2 + delta**2 * (n_a * n_b / safe_n)
    return mean, m2, n, n_b > 0


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


class SampleMoments(NamedTuple):
    """Running sample mean and variance, merged exactly (Welford; Chan et al.).

    Elsayed et al. 2024's ``SampleMeanStd``: the first sample sets the mean, and
    the variance is the unbiased sample variance ``m2 / (count - 1)``, 1 until
    two samples have been seen (unlike :class:`RunningMeanStd`, which starts
    from a prior).

    Attributes:
        mean: per-feature mean of the samples so far.
        m2: per-feature sum of squared deviations from the mean (their ``p``).
        count: the number of samples merged so far.
    """

    mean: Array
    m2: Array
    count: Array

    @property
    def var(self) -> Array:
        """The sample variance ``m2 / (count - 1)``; 1 before two samples."""
        n = self.count
        return jnp.where(n < 2, jnp.ones_like(self.m2), self.m2 / jnp.maximum(n - 1, 1))


def sample_moments_init(shape: tuple[int, ...] = (), dtype=None) -> SampleMoments:
    """No samples yet: mean 0, ``m2`` 0, count 0 (variance 1)."""
    dtype = jnp.zeros(()).dtype if dtype is None else dtype
    zeros = jnp.zeros(shape, dtype)
    return SampleMoments(zeros, zeros, jnp.zeros((), dtype))


def sample_moments_update(
    moments: SampleMoments, x: ArrayLike, mask: ArrayLike | None = None
) -> SampleMoments:
    """Merges the samples ``x`` (leading axis: samples) into ``moments``.

    Chan et al.'s pairwise merge of the counts, means and ``m2``; with one
    sample it is Welford's step (their ``update_mean_var_count_from_moments``:
    ``mean += (x - mean) / n``, ``m2 += (x - mean_old) (x - mean_new)``), and the
    result equals the moments of all samples whatever the batching.

    Args:
        moments: the running moments.
        x: samples, shape ``(N, *moments.mean.shape)``.
        mask: optional ``(N,)`` weights in ``{0, 1}``; masked samples are skipped.

    Returns:
        The updated moments (unchanged if no sample counts).
    """
    mean, m2, n, keep = _merge_moments(moments.mean, moments.m2, moments.count, x, mask)
    return SampleMoments(
        jnp.where(keep, mean, moments.mean), jnp.where(keep, m2, moments.m2), n
    )


def standardize(moments: SampleMoments, x: ArrayLike, eps: float = 1e-8) -> Array:
    """``(x - mean) / sqrt(var + eps)`` with the sample moments (no clipping)."""
    x = jnp.asarray(x, moments.mean.dtype)
    return (x - moments.mean) / jnp.sqrt(moments.var + eps)


class ReturnScaler(NamedTuple):
    """Reward scaling of the streaming agent (Elsayed et al.'s ``ScaleReward``).

    Attributes:
        returns: each stream's discounted return ``u`` (shape ``(B,)``).
        moments: the sample moments of every ``u`` seen (all streams).
    """

    returns: Array
    moments: SampleMoments


def return_scaler_init(num_streams: int, dtype=None) -> ReturnScaler:
    """Zero returns, no samples."""
    dtype = jnp.zeros(()).dtype if dtype is None else dtype
    return ReturnScaler(
        jnp.zeros((num_streams,), dtype), sample_moments_init((), dtype)
    )


def scale_reward_step(
    scaler: ReturnScaler,
    r_t: ArrayLike,
    done_t: ArrayLike,
    discount: float,
    mask_t: ArrayLike | None = None,
    eps: float = 1e-8,
) -> tuple[Array, ReturnScaler]:
    """Scales one step's rewards of every stream, updating the scale first.

    Per stream: ``u <- discount * u * (1 - done_t) + r_t`` (so ``u`` restarts
    from ``r_t`` on the step that ends an episode, exactly as their
    ``ScaleReward.step``); every stream's new ``u`` is merged into the sample
    moments, and ``r_t / sqrt(var + eps)`` is returned (the mean is not
    subtracted).

    Args:
        scaler: the running returns and moments.
        r_t: ``(B,)`` rewards of this step.
        done_t: ``(B,)`` bool: this step ended the episode (terminated or
            truncated).
        discount: gamma of the discounted return.
        mask_t: ``(B,)`` weights; streams with 0 (a transition whose action was
            ignored) leave their ``u`` and the moments alone.
        eps: added to the variance.

    Returns:
        ``(scaled_rewards (B,), scaler)``.
    """
    dtype = scaler.returns.dtype
    r_t = jnp.asarray(r_t, dtype)
    m = jnp.ones_like(r_t) if mask_t is None else jnp.asarray(mask_t, dtype)
    done = jnp.asarray(done_t).astype(dtype)
    u = discount * scaler.returns * (1.0 - done) + r_t
    u = jnp.where(m > 0, u, scaler.returns)
    moments = sample_moments_update(scaler.moments, u, m)
    return r_t / jnp.sqrt(moments.var + eps), ReturnScaler(u, moments)


def episode_time(episode_step: ArrayLike, time_limit: int) -> Array:
    """Elsayed et al.'s time-in-episode input (their ``AddTimeInfo``).

    Their wrapper sets ``epi_time = -0.5`` at reset and shows it with the
    first observation; each step shows ``epi_time``, then adds ``1 /
    time_limit``. So the ``k``-th observation of an episode (``k = 0`` at
    reset) shows ``-0.5 + max(k - 1, 0) / time_limit``: the first two show
    ``-0.5``.

    Args:
        episode_step: ``k``, integer (any shape).
        time_limit: their ``time_limit``.
    """
    k = jnp.asarray(episode_step)
    dtype = jnp.zeros(()).dtype
    return -0.5 + jnp.maximum(k - 1, 0).astype(dtype) / time_limit
