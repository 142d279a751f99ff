"""Base of host environments (simulator kept inside, numpy arrays out)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._types import EnvSpec, TimeStep


class HostState(NamedTuple):
    """The ``state`` of a host environment: a token, not the simulator.

    Attributes:
        step_count: the number of ``reset``/``step`` calls so far. Passing a stale
            token to ``step`` raises, since the simulator cannot go back.
    """

    step_count: int


class HostEnvironment:
    """Shared call checks and spec for host environments."""

    _spec: EnvSpec
    _count: int = -1

    @property
    def spec(self) -> EnvSpec:
        """The environment's spec."""
        return self._spec

    def _next_state(self) -> HostState:
        self._count += 1
        return HostState(self._count)

    def _check_state(self, state: HostState) -> None:
        if self._count < 0:
            raise RuntimeError(f"{self._spec.name}: call reset before step")
        if not isinstance(state, HostState) or state.step_count != self._count:
            raise RuntimeError(
                f"{self._spec.name}: step got a stale state; a host environment "
                "can only be stepped from the state its last call returned"
            )

    def _first_timestep(self, obs: np.ndarray) -> TimeStep:
        n = self._spec.num_envs
        no = np.zeros(n, bool)
        return TimeStep(obs, np.zeros(n, np.float32), no, no.copy(), np.ones(n, bool))

    def __repr__(self) -> str:
        spec = self._spec
        return f"{type(self).__name__}({spec.name!r}, num_envs={spec.num_envs})"
