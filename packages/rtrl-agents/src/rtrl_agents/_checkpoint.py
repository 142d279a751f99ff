"""Orbax checkpoints of a whole run state, restored through a template."""

from __future__ import annotations

import os
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def _leaves(tree: Any) -> list:
    return jax.tree.leaves(eqx.filter(tree, eqx.is_array))


class Checkpointer:
    """Saves and restores every array of a pytree (``RunnerState``, ``AgentState``).

    Uses ``orbax.checkpoint.CheckpointManager`` with an absolute directory, keeps
    the last ``max_to_keep`` steps, and restores into a template of the same
    structure (e.g. a freshly initialised run), so non-array parts (the network's
    static configuration) come from code, arrays from disk, bit for bit.

    Args:
        directory: where checkpoints live (made absolute).
        max_to_keep: how many of the latest checkpoints to keep.
    """

    def __init__(self, directory: str, max_to_keep: int = 3):
        try:
            import orbax.checkpoint as ocp
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError(
                "checkpoints need orbax-checkpoint: "
                "pip install 'rtrl-agents[checkpoint]'"
            ) from e
        self._ocp = ocp
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def save(self, step: int, tree: Any) -> None:
        """Saves the arrays of ``tree`` as checkpoint ``step`` and waits for it."""
        leaves = {f"{i:05d}": np.asarray(x) for i, x in enumerate(_leaves(tree))}
        self._manager.save(int(step), args=self._ocp.args.StandardSave(leaves))
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        """The newest saved step, or ``None``."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Every kept step, oldest first."""
        return sorted(self._manager.all_steps())

    def restore(self, template: Any, step: int | None = None) -> Any:
        """``template`` with its arrays replaced by checkpoint ``step`` (latest)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {self.directory}")
        tmpl = _leaves(template)
        abstract = {f"{i:05d}": np.zeros(x.shape, x.dtype) for i, x in enumerate(tmpl)}
        got = self._manager.restore(
            int(step), args=self._ocp.args.StandardRestore(abstract)
        )
        new = [jnp.asarray(got[f"{i:05d}"], x.dtype) for i, x in enumerate(tmpl)]
        dyn, static = eqx.partition(template, eqx.is_array)
        treedef = jax.tree.structure(dyn)
        return eqx.combine(jax.tree.unflatten(treedef, new), static)

    def close(self) -> None:
        self._manager.close()
