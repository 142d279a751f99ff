"""JAX-native memory tasks: delayed recall, copy, trace conditioning.

Each is a single-stream core (see ``_jax_env``), batched and auto-reset by
``JaxEnvironment``; all observations are float32 vectors.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._options import check_int
from ._types import Discrete

# ---------------------------------------------------------------- delayed recall


@dataclasses.dataclass(frozen=True)
class DelayedRecallOptions:
    """Options of ``memory/delayed-recall``.

    Attributes:
        delay: the number of distractor steps between the cue and the query.
        num_symbols: K, the number of cue symbols (and of actions).
    """

    delay: int = 10
    num_symbols: int = 4

    def __post_init__(self) -> None:
        check_int("delay", self.delay, 0)
        check_int("num_symbols", self.num_symbols, 2)


class DelayedRecallState(NamedTuple):
    """One stream: ``t`` steps since the cue, the ``cue`` symbol."""

    t: jax.Array
    cue: jax.Array


class DelayedRecall:
    """Cue, ``delay`` distractors, query; the action at the query names the cue.

    Observation (size ``2K + 1``): at ``t = 0`` the one-hot cue in ``[0, K)``; at
    ``1 <= t <= delay`` a uniformly random one-hot distractor in ``[K, 2K)``; at
    ``t = delay + 1`` the query flag at index ``2K``. The action taken on the
    query observation gets reward 1 if it equals the cue, else 0, and the
    episode terminates (its last observation is all zeros). Other actions do
    nothing. An episode is ``delay + 2`` actions long; the best memoryless policy
    scores ``1 / K``.
    """

    def __init__(self, options: DelayedRecallOptions) -> None:
        self.options = options
        k = options.num_symbols
        self.observation_shape = (2 * k + 1,)
        self.action_space = Discrete(k)

    def _obs(self, t: jax.Array, cue: jax.Array, key: jax.Array) -> jax.Array:
        k, delay = self.options.num_symbols, self.options.delay
        distractor = jax.random.randint(key, (), 0, k)
        obs = jnp.zeros(self.observation_shape, jnp.float32)
        obs = jnp.where(t == 0, obs.at[cue].set(1.0), obs)
        obs = jnp.where((t >= 1) & (t <= delay), obs.at[k + distractor].set(1.0), obs)
        obs = jnp.where(t == delay + 1, obs.at[2 * k].set(1.0), obs)
        return obs

    def reset(self, key: jax.Array) -> tuple[DelayedRecallState, jax.Array]:
        cue = jax.random.randint(key, (), 0, self.options.num_symbols)
        t = jnp.zeros((), jnp.int32)
        return DelayedRecallState(t, cue), self._obs(t, cue, key)

    def step(self, key: jax.Array, inner: DelayedRecallState, action: jax.Array):
        query = inner.t == self.options.delay + 1
        reward = jnp.where(query & (action == inner.cue), 1.0, 0.0)
        t = inner.t + 1
        obs = self._obs(t, inner.cue, key)  # all zeros after the query
        no = jnp.zeros((), bool)
        return DelayedRecallState(t, inner.cue), obs, reward, query, no


# ------------------------------------------------------------------------- copy


@dataclasses.dataclass(frozen=True)
class CopyOptions:
    """Options of ``memory/copy``.

    Attributes:
        max_length: the longest pattern.
        min_length: the shortest pattern; lengths are uniform in
            ``[min_length, max_length]``.
    """

    max_length: int = 10
    min_length: int = 1

    def __post_init__(self) -> None:
        check_int("max_length", self.max_length, 1)
        check_int("min_length", self.min_length, 1, self.max_length)


class CopyState(NamedTuple):
    """One stream: step ``t``, pattern ``length`` and the padded ``pattern``."""

    t: jax.Array
    length: jax.Array
    pattern: jax.Array


def _copy_sample(key: jax.Array, options: CopyOptions) -> tuple[jax.Array, jax.Array]:
    k_len, k_bits = jax.random.split(key)
    length = jax.random.randint(k_len, (), options.min_length, options.max_length + 1)
    pattern = jax.random.bernoulli(k_bits, 0.5, (options.max_length,)).astype(jnp.int32)
    return length, pattern


def _copy_obs(t: jax.Array, length: jax.Array, pattern: jax.Array) -> jax.Array:
    """Observation at step ``t``: [bit is 0, bit is 1, recall flag]."""
    bit = pattern[jnp.clip(t, 0, pattern.shape[0] - 1)]
    presenting = t < length
    recalling = (t >= length) & (t < 2 * length)
    return jnp.stack(
        [presenting & (bit == 0), presenting & (bit == 1), recalling]
    ).astype(jnp.float32)


def _copy_target(t: jax.Array, length: jax.Array, pattern: jax.Array):
    """The bit to emit at step ``t`` and whether step ``t`` is scored."""
    src = jnp.clip(t - length, 0, pattern.shape[0] - 1)
    return pattern[src], (t >= length) & (t < 2 * length)


class Copy:
    """The copy task (Irie et al. 2024's diagnostic) as an RL environment.

    A random binary pattern of length ``L`` (uniform in ``[min_length,
    max_length]``) is shown one bit per step (one-hot in observation entries 0-1);
    then ``L`` blank steps with the recall flag (entry 2) set, on which the action
    (0 or 1) must reproduce the pattern in order: reward 1 per correct bit. The
    episode terminates after the ``2L``-th action (last observation all zeros).
    Optimal return ``L``; a memoryless policy gets ``L / 2`` in expectation.
    """

    def __init__(self, options: CopyOptions) -> None:
        self.options = options
        self.observation_shape = (3,)
        self.action_space = Discrete(2)

    def reset(self, key: jax.Array) -> tuple[CopyState, jax.Array]:
        length, pattern = _copy_sample(key, self.options)
        t = jnp.zeros((), jnp.int32)
        return CopyState(t, length, pattern), _copy_obs(t, length, pattern)

    def step(self, key: jax.Array, inner: CopyState, action: jax.Array):
        del key
        target, scored = _copy_target(inner.t, inner.length, inner.pattern)
        reward = jnp.where(scored & (action == target), 1.0, 0.0)
        t = inner.t + 1
        obs = _copy_obs(t, inner.length, inner.pattern)
        done = t >= 2 * inner.length
        return inner._replace(t=t), obs, reward, done, jnp.zeros((), bool)


class CopyBatch(NamedTuple):
    """A supervised copy-task batch, batch-major (``B x T``), ``T = 2 max_length``.

    Attributes:
        inputs: float32 ``B x T x 3`` observations (the environment's, zero after
            the sequence).
        targets: int32 ``B x T``, the bit to emit (meaningful where ``mask``).
        mask: bool ``B x T``, true on the recall steps that are scored.
        resets: bool ``B x T``, true at ``t = 0`` (the cell's ``reset_t``).
    """

    inputs: jax.Array
    targets: jax.Array
    mask: jax.Array
    resets: jax.Array


def copy_task_batch(
    key: jax.Array, batch_size: int, max_length: int, min_length: int = 1
) -> CopyBatch:
    """Samples a supervised copy-task batch from the environment's generator.

    Args:
        key: PRNG key.
        batch_size: B.
        max_length: longest pattern; sequences are padded to ``2 * max_length``.
        min_length: shortest pattern.

    Returns:
        A ``CopyBatch``; the accuracy of a model is the mean of
        ``(prediction == targets)`` over ``mask``.
    """
    options = CopyOptions(max_length=max_length, min_length=min_length)
    steps = jnp.arange(2 * max_length)

    def one(k: jax.Array):
        length, pattern = _copy_sample(k, options)
        inputs = jax.vmap(lambda t: _copy_obs(t, length, pattern))(steps)
        targets, mask = jax.vmap(lambda t: _copy_target(t, length, pattern))(steps)
        return CopyBatch(inputs, targets, mask, steps == 0)

    return jax.vmap(one)(jax.random.split(key, batch_size))


# ----------------------------------------------------------- trace conditioning


@dataclasses.dataclass(frozen=True)
class TraceConditioningOptions:
    """Options of ``memory/trace-conditioning`` (times in steps).

    Defaults follow the long-ISI setting of Rafiee et al. (2023): ISI uniform in
    [14, 26], ITI uniform in [80, 120], CS lasting 4 steps, US 2 steps, 10
    distractors.

    Attributes:
        isi_min: shortest inter-stimulus interval (CS onset to US onset).
        isi_max: longest inter-stimulus interval.
        iti_min: shortest inter-trial interval (US onset to the next CS onset).
        iti_max: longest inter-trial interval.
        cs_duration: steps the CS (and each distractor) stays on.
        us_duration: steps the US stays on.
        num_distractors: number of distractor stimuli.
        distractor_onset_prob: per step, the chance that an idle distractor
            switches on (onsets independent of the CS and US).
    """

    isi_min: int = 14
    isi_max: int = 26
    iti_min: int = 80
    iti_max: int = 120
    cs_duration: int = 4
    us_duration: int = 2
    num_distractors: int = 10
    distractor_onset_prob: float = 0.02

    def __post_init__(self) -> None:
        check_int("isi_min", self.isi_min, 1)
        check_int("isi_max", self.isi_max, self.isi_min)
        check_int("us_duration", self.us_duration, 1)
        check_int("iti_min", self.iti_min, self.us_duration)
        check_int("iti_max", self.iti_max, self.iti_min)
        check_int("cs_duration", self.cs_duration, 1, self.isi_min + self.iti_min)
        check_int("num_distractors", self.num_distractors, 0)
        p = self.distractor_onset_prob
        if not isinstance(p, float | int) or isinstance(p, bool) or not 0 <= p <= 1:
            from ._errors import InvalidOptionError

            raise InvalidOptionError(
                f"option distractor_onset_prob={p!r} is invalid: allowed values are "
                "floats in [0, 1]"
            )


class TraceConditioningState(NamedTuple):
    """One stream: ``k`` steps since this trial's CS onset, its ``isi`` and
    ``trial_length`` (ISI + ITI), and each distractor's remaining on-time."""

    k: jax.Array
    isi: jax.Array
    trial_length: jax.Array
    distractor_left: jax.Array


class TraceConditioning:
    """Trace conditioning (Rafiee, Abbas, ..., White 2023), a prediction task.

    Observation ``[CS, US, distractors...]`` (binary, float32). Each trial starts
    with the CS on for ``cs_duration`` steps; the US comes on ``ISI`` steps after
    CS onset for ``us_duration`` steps; the next CS comes ``ITI`` steps after US
    onset. The reward is the cumulant, the US signal of the observation returned
    (``reward_t = obs_t[1]``): predict its discounted sum online (see
    ``discounted_returns``). Between CS and US nothing in the observation says a
    US is coming: only memory of the CS does. The single action does nothing;
    the task is continuing (never terminates or truncates).
    """

    def __init__(self, options: TraceConditioningOptions) -> None:
        self.options = options
        self.observation_shape = (2 + options.num_distractors,)
        self.action_space = Discrete(1)

    def _new_trial(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        o = self.options
        k_isi, k_iti = jax.random.split(key)
        isi = jax.random.randint(k_isi, (), o.isi_min, o.isi_max + 1)
        iti = jax.random.randint(k_iti, (), o.iti_min, o.iti_max + 1)
        return isi, isi + iti

    def _distractors(self, key: jax.Array, left: jax.Array) -> jax.Array:
        o = self.options
        onset = jax.random.bernoulli(key, o.distractor_onset_prob, left.shape)
        return jnp.where(left > 0, left - 1, jnp.where(onset, o.cs_duration, 0))

    def _obs(self, s: TraceConditioningState) -> jax.Array:
        o = self.options
        cs = s.k < o.cs_duration
        us = (s.k >= s.isi) & (s.k < s.isi + o.us_duration)
        return jnp.concatenate([jnp.stack([cs, us]), s.distractor_left > 0]).astype(
            jnp.float32
        )

    def reset(self, key: jax.Array) -> tuple[TraceConditioningState, jax.Array]:
        k_trial, k_dis = jax.random.split(key)
        isi, trial_length = self._new_trial(k_trial)
        left = jnp.zeros((self.options.num_distractors,), jnp.int32)
        left = self._distractors(k_dis, left)
        s = TraceConditioningState(jnp.zeros((), jnp.int32), isi, trial_length, left)
        return s, self._obs(s)

    def step(self, key: jax.Array, inner: TraceConditioningState, action: jax.Array):
        del action
        k_trial, k_dis = jax.random.split(key)
        k = inner.k + 1
        isi_new, len_new = self._new_trial(k_trial)
        wrap = k >= inner.trial_length
        s = TraceConditioningState(
            jnp.where(wrap, 0, k),
            jnp.where(wrap, isi_new, inner.isi),
            jnp.where(wrap, len_new, inner.trial_length),
            self._distractors(k_dis, inner.distractor_left),
        )
        obs = self._obs(s)
        no = jnp.zeros((), bool)
        return s, obs, obs[1], no, no


def discounted_returns(cumulants: jax.Array, gamma: float) -> jax.Array:
    """``G_t = sum_k gamma^k c_{t+1+k}``: the target of an online prediction.

    Args:
        cumulants: ``T x ...`` cumulants, time first; ``cumulants[t]`` is the
            one received with observation ``t`` (the ``reward`` of a TimeStep).
        gamma: discount in ``[0, 1)``.

    Returns:
        ``T x ...`` returns, where ``G_t`` sums cumulants strictly after ``t``
        (those observed from ``t + 1`` on), truncated at the end of the array.
    """

    def back(g_tp1, c_tp1):
        g_t = c_tp1 + gamma * g_tp1
        return g_t, g_t

    nxt = jnp.concatenate([cumulants[1:], jnp.zeros_like(cumulants[:1])])
    _, g = jax.lax.scan(back, jnp.zeros_like(cumulants[0]), nxt, reverse=True)
    return g


def _max_episode_steps_of(core: object) -> int | None:
    """The longest episode of a memory task in actions, or None if continuing."""
    if isinstance(core, DelayedRecall):
        return core.options.delay + 2
    if isinstance(core, Copy):
        return 2 * core.options.max_length
    return None
