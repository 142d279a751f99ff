"""Small pure-JAX environments that follow rtrl-agents' environment protocol.

They follow the rtrl-envs conventions (batch-first, auto-reset on the step after
a last observation, which ignores its action and returns ``first=True`` with
reward 0) without importing rtrl-envs.
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import rtrl_agents as ra


class TimeStep(NamedTuple):
    observation: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    first: jax.Array


@dataclasses.dataclass(frozen=True)
class Discrete:
    n: int


@dataclasses.dataclass(frozen=True)
class Box:
    low: tuple[float, ...]
    high: tuple[float, ...]
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Spec:
    observation_shape: tuple[int, ...]
    action_space: object
    num_envs: int
    is_jax: bool = True


class _State(NamedTuple):
    key: jax.Array
    t: jax.Array
    cue: jax.Array
    last: jax.Array


class DelayedRecall:
    """A cue (one of ``num_symbols``) at t=0, ``delay`` steps of random
    distractor bits, then a query; the action at the query earns 1 if it names
    the cue, then the episode terminates. Memoryless chance: ``1/num_symbols``.
    Observation: ``[cue one-hot (K), query flag, distractor bits (n_noise)]``.
    """

    def __init__(
        self, num_envs=16, delay=8, num_symbols=2, num_noise=2, cue_at_query=False
    ):
        # cue_at_query=True shows the cue again with the query: no memory needed.
        self.delay, self.k, self.noise = delay, num_symbols, num_noise
        self.cue_at_query = cue_at_query
        self.spec = Spec(
            (num_symbols + 1 + num_noise,), Discrete(num_symbols), num_envs
        )

    def _obs(self, key, t, cue):
        k = self.k
        shown = (t == 0) | (self.cue_at_query & (t == self.delay + 1))
        cue_part = jax.nn.one_hot(cue, k) * shown[..., None]
        query = (t == self.delay + 1).astype(jnp.float32)[..., None]
        noise = (
            jax.random.bernoulli(key, 0.5, (*t.shape, self.noise)).astype(jnp.float32)
            * ((t >= 1) & (t <= self.delay))[..., None]
        )
        return jnp.concatenate([cue_part, query, noise], -1)

    def reset(self, key):
        n = self.spec.num_envs
        key, k_cue, k_obs = jax.random.split(key, 3)
        cue = jax.random.randint(k_cue, (n,), 0, self.k)
        t = jnp.zeros((n,), jnp.int32)
        state = _State(key, t, cue, jnp.zeros((n,), bool))
        ts = TimeStep(
            self._obs(k_obs, t, cue),
            jnp.zeros((n,)),
            jnp.zeros((n,), bool),
            jnp.zeros((n,), bool),
            jnp.ones((n,), bool),
        )
        return state, ts

    def step(self, state, action):
        n = self.spec.num_envs
        key, k_cue, k_obs = jax.random.split(state.key, 3)
        new_cue = jax.random.randint(k_cue, (n,), 0, self.k)
        at_query = state.t == self.delay + 1
        reward = jnp.where(at_query & (action == state.cue), 1.0, 0.0)
        t = jnp.where(state.last, 0, state.t + 1)
        cue = jnp.where(state.last, new_cue, state.cue)
        terminated = at_query & ~state.last
        # The terminal timestep carries a blank last observation.
        obs = self._obs(k_obs, jnp.where(terminated, -1, t), cue)
        blank = terminated.reshape(-1, *([1] * (obs.ndim - 1)))
        obs = jnp.where(blank, jnp.zeros_like(obs), obs)
        reward = jnp.where(state.last, 0.0, reward)
        ts = TimeStep(obs, reward, terminated, jnp.zeros((n,), bool), state.last)
        return _State(key, t, cue, terminated), ts


class NaNReward:
    """Wraps an environment; from step ``at`` on, rewards are NaN."""

    def __init__(self, env, at: int):
        self.env, self.at, self.spec = env, at, env.spec

    def reset(self, key):
        state, ts = self.env.reset(key)
        return (state, jnp.zeros((), jnp.int32)), ts

    def step(self, state, action):
        inner, t = state
        inner, ts = self.env.step(inner, action)
        reward = jnp.where(t + 1 >= self.at, jnp.nan, ts.reward)
        return (inner, t + 1), ts._replace(reward=reward)


class HostEnv:
    """A JAX environment behind a host interface: numpy in and out, is_jax=False."""

    def __init__(self, env):
        self.env = env
        self.spec = dataclasses.replace(env.spec, is_jax=False)
        self._step = jax.jit(env.step)

    def reset(self, key):
        state, ts = self.env.reset(key)
        return state, jax.tree.map(np.asarray, ts)

    def step(self, state, action):
        state, ts = self._step(state, jnp.asarray(action))
        return state, jax.tree.map(np.asarray, ts)


def recall_config(method: str, rollout_length: int = 4, updates: int | None = None):
    """The recall agent's R2AC config (see :func:`recall_network`)."""
    return ra.R2ACConfig(
        network=recall_network(method),
        rollout_length=rollout_length,
        learning_rate=5e-3,
        decay_updates=updates,
    )


def ppo_recall_config(method: str = "rtrl", traces: str = "stale", seq_len: int = 1):
    """PPO on a short recall (the single-machine PPO learning test's agent)."""
    net = ra.NetworkConfig(
        torso=ra.TorsoConfig(hidden_sizes=(32,), activation="tanh", reward_input=False),
        core=ra.CoreConfig(cell="elstm", hidden_size=32, method=method),
        heads=ra.HeadConfig(hidden_sizes=(32,)),
    )
    return ra.PPOConfig(
        network=net,
        rollout_length=32,
        num_epochs=4,
        num_minibatches=4,
        sequence_length=seq_len,
        traces=traces,
        learning_rate=1e-3,
        entropy_cost=0.01,
    )


def recall_network(method: str):
    """The recall agent: the observation (and previous reward) go straight into
    a 32-unit eLSTM, so the only path from cue to query is the recurrent state.

    No torso: R2AC's torso gets BPTT gradients truncated at the rollout start (as
    in the seed), so it can never learn to keep the cue, and a random ReLU torso
    in front of the core loses it for some seeds. Measured over 16 seeds (8000
    updates, vmapped ``make_train``): with a (32,) ReLU torso RTRL passed 0.95
    success on only 7 of 16 seeds, and some stayed at chance; without it RTRL
    passed 0.999 on 64 of 64 seeds and TBPTT stayed <= 0.51 on 32 of 32.
    """
    return ra.NetworkConfig(
        torso=ra.TorsoConfig(hidden_sizes=()),
        core=ra.CoreConfig(cell="elstm", hidden_size=32, method=method),
    )


def recall_env(seed: int, num_envs: int = 16, delay: int = 8, host: bool = False):
    """A delayed recall for a Ray actor (module-level: actors import it by name)."""
    del seed  # the actor's key seeds the environment
    env = DelayedRecall(num_envs=num_envs, delay=delay, num_symbols=2, num_noise=2)
    return HostEnv(env) if host else env


class _HangingEnv:
    """A host environment whose step never returns (a stuck simulator)."""

    def __init__(self, seed: int):
        self.inner = recall_env(seed, num_envs=2, host=True)
        self.spec = self.inner.spec

    def reset(self, key):
        return self.inner.reset(key)

    def step(self, state, action):
        time.sleep(3600)


def hanging_env(seed: int):
    return _HangingEnv(seed)
