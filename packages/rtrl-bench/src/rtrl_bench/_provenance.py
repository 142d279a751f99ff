"""What produced a result: package versions, JAX, device, machine, git commit."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess
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
    # the folder the command happens to run in.
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, ""
    return {
        "versions": versions,
        "device": str(jax.devices()[0]),
        "backend": jax.default_backend(),
        "machine": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "git_commit": commit,
        "git_dirty": bool(dirty),
        # On CPU, the allocator's settings move timings by up to 25% (rtrl-bench
        # README, "Allocator"): keep them with the result.
        "allocator_env": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith("MALLOC_") or k == "LD_PRELOAD"
        },
    }
