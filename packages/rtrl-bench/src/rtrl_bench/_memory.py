"""Peak resident memory of an experiment's arms, each trained in its own process.

``rtrl-bench memory EXPERIMENT`` runs ``rtrl-bench run EXPERIMENT --variants V
--frames F`` for each arm in a fresh child process (a temporary run folder, so
nothing of the user's is touched) and reads the child's peak resident set size
from the kernel (``wait4``'s ``ru_maxrss``): compilation, the rollout storage,
the update and the final evaluation, everything a user's run holds at once.
A watcher stops a child that passes ``cap_gb`` so that a measurement cannot take
the machine down; that arm is reported as over the cap.

``checkout=`` (``--checkout DIR``) measures another checkout of this repository
(an older commit, say) with the same tool: its ``packages/*/src`` come first on
the child's ``PYTHONPATH``. That is how "PPO's memory" was compared before and
after.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

_KB = 1024


@dataclasses.dataclass(frozen=True)
class MemoryRow:
    """One arm's measurement.

    Attributes:
        experiment: the registered experiment.
        variant: the arm.
        updates: updates trained (frames = updates x frames per update).
        frames: the ``--frames`` given to the child.
        peak_gb: peak resident memory of the child, GiB (at least ``cap_gb`` when
            it was stopped at the cap).
        seconds: wall time of the child, including start-up and compilation.
        status: ``"ok"``, ``"over cap"`` or ``"failed (exit N)"``.
        error: the child's last line of stderr when it failed.
    """

    experiment: str
    variant: str
    updates: int
    frames: int
    peak_gb: float
    seconds: float
    status: str
    error: str = ""


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _child_env(checkout: str | None) -> dict[str, str] | None:
    if checkout is None:
        return None
    sources = sorted(Path(checkout).glob("packages/*/src"))
    if not sources:
        raise ValueError(
            f"--checkout {checkout} has no packages/*/src: give the root of a "
            "checkout of this repository."
        )
    env = dict(os.environ)
    path = [str(p.resolve()) for p in sources]
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(path)
    return env


def frames_per_update(experiment: str, variant: str) -> int:
    """Agent steps of one update of ``variant`` (all streams).

    Raises:
        UnknownExperimentError / ValueError: an unknown experiment or variant.
    """
    from ._experiments import get_experiment

    exp = get_experiment(experiment)
    arms = {v.name: v for v in exp.variants}
    if variant not in arms:
        raise ValueError(
            f"{experiment} has no variant {variant!r}; its variants are "
            f"{', '.join(arms)}."
        )
    return arms[variant].steps_per_update * exp.env.num_envs


def measure_arm(
    experiment: str,
    variant: str,
    *,
    updates: int = 1,
    cap_gb: float = 8.0,
    checkout: str | None = None,
) -> MemoryRow:
    """Trains one arm for ``updates`` updates in a child process; its peak memory.

    Args:
        experiment: a registered experiment.
        variant: one of its arms.
        updates: updates to train.
        cap_gb: the child is stopped when its resident memory passes this (GiB).
        checkout: a checkout of this repository whose packages the child imports
            (default: the installed ones).

    Raises:
        ValueError: ``updates`` < 1 or ``cap_gb`` <= 0, an unknown variant, or a
            ``checkout`` without ``packages/*/src``.
        OSError: ``wait4`` is not available (this measures on Linux and macOS).
    """
    if updates < 1 or not cap_gb > 0:
        raise ValueError(f"updates={updates} must be >= 1 and cap_gb={cap_gb} > 0.")
    if not hasattr(os, "wait4"):
        raise OSError("rtrl-bench memory needs os.wait4 (Linux or macOS).")
    frames = updates * frames_per_update(experiment, variant)
    cap_kb = int(cap_gb * _KB * _KB)
    with tempfile.TemporaryDirectory(prefix="rtrl-memory-") as logdir:
        cmd = [
            sys.executable,
            "-m",
            "rtrl_bench",
            "run",
            experiment,
            "--variants",
            variant,
            "--frames",
            str(frames),
            "--seeds",
            "1",
            "--logdir",
            logdir,
            "--quiet",
        ]
        start = time.perf_counter()
        child = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=_child_env(checkout),
        )
        over, reaped = threading.Event(), threading.Event()

        def watch() -> None:
            # Not child.poll(): it would reap the child and lose its rusage.
            while not reaped.wait(0.1):
                if _rss_kb(child.pid) > cap_kb:
                    over.set()
                    os.kill(child.pid, signal.SIGKILL)
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        # wait4 is the only call that reaps the child, so that its rusage is the
        # child's own (RUSAGE_CHILDREN would be the maximum over every child).
        assert child.stderr is not None
        stderr = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
        reaped.set()
        child.returncode = os.waitstatus_to_exitcode(status)
        watcher.join()
        seconds = time.perf_counter() - start
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    peak_kb = usage.ru_maxrss / (_KB if sys.platform == "darwin" else 1)
    peak_gb = peak_kb / (_KB * _KB)
    if over.is_set():
        state, error = "over cap", ""
        peak_gb = max(peak_gb, cap_gb)
    elif child.returncode != 0:
        lines = [line for line in stderr.splitlines() if line.strip()]
        state, error = f"failed (exit {child.returncode})", lines[-1] if lines else ""
    else:
        state, error = "ok", ""
    return MemoryRow(
        experiment, variant, updates, frames, peak_gb, seconds, state, error
    )


def format_table(rows: Sequence[MemoryRow]) -> str:
    """A markdown table of :class:`MemoryRow`s."""
    out = [
        "| experiment | variant | updates | peak memory | wall time | status |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        bound = ">= " if r.status == "over cap" else ""
        status = r.status + (f": {r.error}" if r.error else "")
        out.append(
            f"| {r.experiment} | {r.variant} | {r.updates} "
            f"| {bound}{r.peak_gb:.2f} GiB | {r.seconds:.0f} s | {status} |"
        )
    return "\n".join(out)
