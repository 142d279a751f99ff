"""POPGym adapter: the RTU paper's five tasks from the ``popgym`` package."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from ._errors import extra_missing
from ._host import HostEnvironment, HostState
from ._types import Discrete, EnvSpec, TimeStep, check_action

POPGYM_TASKS = (
    "RepeatFirst",
    "CountRecall",
    "Concentration",
    "Autoencode",
    "HigherLower",
)
POPGYM_LEVELS = ("Easy", "Medium", "Hard")


@dataclasses.dataclass(frozen=True)
class PopgymOptions:
    """Options of ``popgym/<Task><Level>`` (none yet; the level is in the name)."""


def _flat_size(space: Any) -> int:
    kind = type(space).__name__
    if kind == "Discrete":
        return int(space.n)
    if kind == "MultiDiscrete":
        return int(np.sum(space.nvec))
    if kind == "Tuple":
        return sum(_flat_size(s) for s in space.spaces)
    if kind == "Box":
        return int(np.prod(space.shape))
    raise TypeError(f"unsupported POPGym observation space {space!r}")


def flatten_observation(space: Any, obs: Any) -> np.ndarray:
    """Flattens a POPGym observation to float32: one-hot for discrete parts."""
    kind = type(space).__name__
    if kind == "Discrete":
        out = np.zeros(int(space.n), np.float32)
        out[int(obs) - int(getattr(space, "start", 0))] = 1.0
        return out
    if kind == "MultiDiscrete":
        nvec = np.asarray(space.nvec).ravel()
        out = np.zeros(int(nvec.sum()), np.float32)
        offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
        out[offsets + np.asarray(obs).ravel()] = 1.0
        return out
    if kind == "Tuple":
        return np.concatenate(
            [flatten_observation(s, o) for s, o in zip(space.spaces, obs, strict=True)]
        )
    if kind == "Box":
        return np.asarray(obs, np.float32).ravel()
    raise TypeError(f"unsupported POPGym observation space {space!r}")


def import_popgym() -> Any:
    """Imports ``popgym.envs`` or raises the error that names the extra."""
    try:
        import popgym.envs
    except ImportError as e:
        raise extra_missing("popgym", "popgym") from e
    return popgym.envs


class PopgymEnvironment(HostEnvironment):
    """``num_envs`` POPGym environments stepped on the host.

    Stream ``i`` is seeded with ``seed + i`` at the first reset; later episodes
    continue its random stream, so the same seed gives the same trajectory.
    Observations are flattened (one-hot for discrete parts) to float32.
    """

    def __init__(self, name: str, task: str, num_envs: int, seed: int) -> None:
        envs = import_popgym()
        cls = getattr(envs, task)
        self._envs = [cls() for _ in range(num_envs)]
        self._seed = int(seed)
        self._obs_space = self._envs[0].observation_space
        act = self._envs[0].action_space
        if type(act).__name__ != "Discrete":
            raise TypeError(f"{name}: unsupported action space {act!r}")
        size = _flat_size(self._obs_space)
        self._spec = EnvSpec(
            name, (size,), np.dtype(np.float32), Discrete(int(act.n)), num_envs, False
        )
        self._last = np.zeros(num_envs, bool)
        self._obs = np.zeros((num_envs, size), np.float32)

    def reset(self, key: jax.Array | None = None) -> tuple[HostState, TimeStep]:
        """Resets every stream; ``key`` is unused (seeded by ``make``'s seed)."""
        del key
        for i, env in enumerate(self._envs):
            obs, _ = env.reset(seed=self._seed + i)
            self._obs[i] = flatten_observation(self._obs_space, obs)
        self._last = np.zeros(self._spec.num_envs, bool)
        return self._next_state(), self._first_timestep(self._obs.copy())

    def step(self, state: HostState, action: Any) -> tuple[HostState, TimeStep]:
        """Steps every stream (see the auto-reset convention)."""
        self._check_state(state)
        action = check_action(self._spec, action)
        n = self._spec.num_envs
        reward = np.zeros(n, np.float32)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        first = self._last.copy()
        for i, env in enumerate(self._envs):
            if first[i]:
                obs, _ = env.reset()
            else:
                obs, r, te, tr, _ = env.step(int(action[i]))
                reward[i], terminated[i] = r, te
                truncated[i] = tr and not te
            self._obs[i] = flatten_observation(self._obs_space, obs)
        self._last = terminated | truncated
        return self._next_state(), TimeStep(
            self._obs.copy(), reward, terminated, truncated, first
        )
