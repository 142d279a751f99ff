"""One factory for any agent, by the type of its config."""

from __future__ import annotations

from typing import Any

import rtrl_cells as rc

from ._config import PPOConfig, R2ACConfig, StreamingACConfig
from ._core import Agent
from ._ppo import ppo
from ._r2ac import r2ac
from ._streaming import streaming_ac

AgentConfig = R2ACConfig | PPOConfig | StreamingACConfig
"""The configs :func:`make_agent` makes agents from."""


def make_agent(
    config: AgentConfig, spec: Any, *, cell: rc.AbstractCell | None = None
) -> Agent[Any, Any]:
    """The agent ``config`` describes, for an environment's ``spec``:
    :func:`r2ac`, :func:`ppo` or :func:`streaming_ac` by the config's type.

    Raises:
        ValueError: (one line) ``config`` is not an agent's config.
    """
    if isinstance(config, R2ACConfig):
        return r2ac(config, spec, cell=cell)
    if isinstance(config, PPOConfig):
        return ppo(config, spec, cell=cell)
    if isinstance(config, StreamingACConfig):
        return streaming_ac(config, spec, cell=cell)
    raise ValueError(
        f"no agent takes a {type(config).__name__}: pass an R2ACConfig, a "
        "PPOConfig or a StreamingACConfig."
    )
