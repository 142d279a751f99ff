"""Errors raised by ``make`` and the adapters."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UnknownEnvironmentError(ValueError):
    """The environment name is not registered (the message lists close matches)."""


class InvalidOptionError(ValueError):
    """An option is unknown or has a bad value (the message names the allowed ones)."""


class InvalidActionError(ValueError):
    """An action batch does not fit the action space (shape, dtype, range)."""


class BackendNotInstalledError(ImportError):
    """A backend an environment needs is missing (the message says how to install)."""


def close_matches(word: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Returns up to ``n`` candidates close to ``word`` (case-insensitive)."""
    candidates = list(candidates)
    lower = {c.lower(): c for c in candidates}
    family, _, tail = word.lower().rpartition("/")
    if family:
        # Compare the part after a shared family prefix: "atari/" alone would
        # make every Atari game look close.
        same = {c.rpartition("/")[2]: c for c in lower if c.startswith(family + "/")}
        found = difflib.get_close_matches(tail, list(same), n=n, cutoff=0.7)
        found = [same[f] for f in found]
    else:
        found = difflib.get_close_matches(word.lower(), list(lower), n=n, cutoff=0.6)
    if not found:  # fall back on a substring of the name
        found = [c for c in lower if tail and len(tail) > 2 and tail in c][:n]
    return [lower[f] for f in found]


def extra_missing(module: str, extra: str) -> BackendNotInstalledError:
    """The ImportError raised when an optional backend is absent."""
    return BackendNotInstalledError(
        f"{module} is not installed: pip install 'rtrl-envs[{extra}]'"
    )
