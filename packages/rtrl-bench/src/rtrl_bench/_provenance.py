"""What produced a result: package versions, JAX, device, machine, git commit."""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGES = (
    "rtrl-cells",
    "rtrl-envs",
    "rtrl-agents",
    "rtrl-bench",
    "jax",
    "jaxlib",
    "equinox",
    "optax",
    "numpy",
    "envpool",
    "gymnax",
    "popgym",
)


_COMMAND: list[str] | None = None


@contextlib.contextmanager
def command_line(argv: list[str]):
    """Records ``argv`` as the command line of what runs inside (the CLI's own
    arguments, which ``sys.argv`` is not when ``main`` is called in-process)."""
    global _COMMAND
    previous, _COMMAND = _COMMAND, list(argv)
    try:
        yield
    finally:
        _COMMAND = previous


def provenance() -> dict[str, Any]:
    """Versions, device and git commit, to be stored beside every result."""
    import jax

    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    # Ask the checkout this package was installed from (editable installs), not
    # the folder the command happens to run in; a wheel installed somewhere
    # inside another repository must not report that repository's commit, so
    # the module file itself must be tracked.
    here = Path(__file__).resolve()
    commit, dirty = None, ""
    try:
        subprocess.run(
            ["git", "-C", str(here.parent), "ls-files", "--error-unmatch", here.name],
            capture_output=True,
            check=True,
        )
        commit = subprocess.run(
            ["git", "-C", str(here.parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(here.parent),
                "status",
                "--porcelain",
                "--untracked-files=no",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, ""
    source = (
        f"git checkout {commit[:12]}{' (with local changes)' if dirty else ''}"
        if commit
        else "an installed package, no git checkout"
    )
    return {
        "versions": versions,
        "device": str(jax.devices()[0]),
        "backend": jax.default_backend(),
        "machine": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "git_commit": commit,
        "git_dirty": bool(dirty),
        "source": source,
        "argv": list(sys.argv) if _COMMAND is None else list(_COMMAND),
        # On CPU, the allocator's settings move timings by up to 25% (rtrl-bench
        # README, "Allocator"): keep them with the result.
        "allocator_env": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith("MALLOC_") or k == "LD_PRELOAD"
        },
    }
