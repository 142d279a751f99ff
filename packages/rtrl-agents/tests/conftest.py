"""rtrl-agents tests: float32 by default; exactness tests switch to float64."""

import os
import sys

import jax
import pytest
from jaxtyping import install_import_hook

# jaxtyping's runtime checks (with beartype) on every annotated function and
# typed state of the agents; configs are left to their own validation, which
# raises one-line ValueErrors that the tests check.
_CHECKED = [
    f"rtrl_agents.{m}"
    for m in (
        "_actor",
        "_core",
        "_losses",
        "_loop",
        "_networks",
        "_normalize",
        "_ppo",
        "_prediction",
        "_r2ac",
        "_streaming",
    )
]
with install_import_hook(_CHECKED, "beartype.beartype"):
    import rtrl_agents  # noqa: F401

sys.path.insert(0, os.path.dirname(__file__))

# The distributed tests' Ray cluster stays on loopback: Ray reads this when it is
# imported (single-node mode; by default it advertises the node's network IP).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# ... and needs no token (a token left in ~/.ray by another local cluster would
# otherwise switch `ray start` to token mode while this process stays without).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture
def x64():
    """Float64 for the duration of one test (exactness checks)."""
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)
