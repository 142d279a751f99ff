"""Sessions of the RTRL monorepo: tests, lint, demo, bench (and one test session per
package). Virtualenvs are reused between runs: ``nox -s tests`` twice installs once.

    nox -s tests                    # every package's fast tests
    nox -s tests -- --runslow       # and the slow ones
    nox -s tests-rtrl-cells         # one package
    nox -s lint                     # ruff check, ruff format --check, versions
    nox -s demo                     # the main job
    nox -s bench -- gradcheck       # any rtrl-bench subcommand
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint"]

ROOT = Path(__file__).parent
# Dependency order: a package comes after the packages it depends on.
ORDER = ["rtrl-cells", "rtrl-envs", "rtrl-agents", "rtrl-bench"]
PACKAGES = sorted(
    (p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists()),
    key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name),
)
# Debian packages some tests need: ProcGen (envpool) loads the Qt5 runtime.
APT_PACKAGES = {"rtrl-envs": ["libqt5gui5"]}


def _editable(packages: list[str], extra: str | None = None) -> list[str]:
    args = []
    for name in packages:
        path = f"packages/{name}"
        args += ["-e", f"{path}[{extra}]" if extra else path]
    return args


def _ensure_system_packages(session: nox.Session, packages: list[str]) -> None:
    """Installs missing Debian packages when we can (root with apt), else warns."""
    wanted = [apt for name in packages for apt in APT_PACKAGES.get(name, [])]
    missing = (
        [
            apt
            for apt in wanted
            if subprocess.run(["dpkg", "-s", apt], capture_output=True).returncode != 0
        ]
        if shutil.which("dpkg")
        else []
    )
    if not missing:
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        session.run("apt-get", "update", "-qq", external=True)
        session.run(
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            *missing,
            external=True,
        )
    else:
        session.warn(
            f"Debian packages {missing} are missing and cannot be installed here "
            f"(need root and apt-get): sudo apt-get install {' '.join(missing)}"
        )


def _pytest(session: nox.Session, packages: list[str]) -> None:
    _ensure_system_packages(session, packages)
    session.install(*_editable(packages, "test"))
    # One pytest process per package: each package sets its own JAX config (the
    # cells' exactness suite runs in float64), so they must not share a process.
    for name in packages:
        session.run("pytest", f"packages/{name}/tests", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Every package's tests (fast by default; `-- --runslow` for all)."""
    _pytest(session, PACKAGES)


for _name in PACKAGES:

    def _package_tests(session: nox.Session, name: str = _name) -> None:
        deps = PACKAGES[: PACKAGES.index(name) + 1]
        if deps[:-1]:
            session.install(*_editable(deps[:-1]))
        _pytest(session, [name])

    _package_tests.__doc__ = f"Tests of {_name} only."
    nox.session(name=f"tests-{_name}")(_package_tests)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and package version consistency."""
    session.install("ruff>=0.6", "tomli; python_version < '3.11'")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", "tools/check_versions.py")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: the gradient check, then the horizon study (3 seeds).

    Delayed recall with delay 4 x M: R2AC with an RTRL eLSTM solves it, TBPTT
    and feedforward stay at chance. About 10 minutes on 2 cores. Prints the table
    and where the TensorBoard logs and the PNG are; `nox -s demo -- --frames N`
    changes the budget. Runs with ``--resume``: a second demo skips the runs it
    finished and continues a killed one from its last checkpoint (another budget
    is refused until the folder is moved or `--allow-config-change` is given).
    """
    session.install(
        "-e",
        "packages/rtrl-cells",
        "-e",
        "packages/rtrl-envs",
        "-e",
        "packages/rtrl-agents[tensorboard,checkpoint,progress]",
        "-e",
        "packages/rtrl-bench",
    )
    # First, the property everything stands on: RTRL equals full BPTT, every cell.
    session.run("rtrl-bench", "gradcheck")
    logdir = ROOT / "runs" / "demo"
    session.run(
        "rtrl-bench",
        "run",
        "horizon",
        "--seeds",
        "3",
        "--logdir",
        str(logdir),
        "--resume",
        *session.posargs,
    )
    session.run("rtrl-bench", "report", str(logdir))
    session.log(f"TensorBoard: tensorboard --logdir {logdir}")


@nox.session
def bench(session: nox.Session) -> None:
    """Any rtrl-bench subcommand: `nox -s bench -- gradcheck`, `-- envs`, ..."""
    _ensure_system_packages(session, PACKAGES)
    extras = {"rtrl-bench": "envs"}
    args = []
    for name in PACKAGES:
        extra = extras.get(name)
        args += ["-e", f"packages/{name}[{extra}]" if extra else f"packages/{name}"]
    session.install(*args)
    session.run("rtrl-bench", *(session.posargs or ["--help"]))
