"""The errors and warnings a run raises when its record cannot be trusted.

Each is raised with one line that names what is wrong and what to do; none is
ever swallowed into a silent fallback.
"""

from __future__ import annotations


class NonFiniteError(FloatingPointError):
    """A non-finite loss, gradient, parameter or optimizer state: the run stopped
    (the update was not applied, and nothing non-finite was checkpointed)."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's arrays do not fit the state this config builds (a path,
    shape or dtype differs); the message names the first mismatch."""


class ConfigMismatchError(ValueError):
    """Resuming with a config that differs from the one the run was made with;
    the message lists the fields that differ."""


class CheckpointNotReadableError(RuntimeError):
    """No checkpoint under a folder could be read (each was skipped with a
    :class:`CheckpointWarning`)."""


class RunInUseError(RuntimeError):
    """Another process holds the run folder's lock."""


class RunExistsError(FileExistsError):
    """The folder already holds a run, and resuming it was not asked for."""


class CheckpointWarning(UserWarning):
    """An unreadable checkpoint was skipped (and moved aside)."""
