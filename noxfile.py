"""Sessions of the RTRL monorepo: tests, lint, demo, bench (and one test session per
package). Virtualenvs are reused between runs: ``nox -s tests`` twice installs once.

    nox -s tests                    # every package's fast tests
    nox -s tests -- --runslow       # and the slow ones
    nox -s tests-rtrl-cells         # one package
    nox -s lint                     # ruff check, ruff format --check, versions
    nox -s demo                     # the main job
    nox -s bench -- gradcheck       # any rtrl-bench subcommand
    nox -s build                    # sdists and wheels of every package in dist/
    nox -s wheels                   # each package installed alone from dist/
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
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


# The sources pyright checks, with no error allowed: every package's source and
# the tools (a refactor that breaks a tool fails the lint session).
TYPED = [*(f"packages/{name}/src" for name in PACKAGES), "tools"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, package version consistency, and pyright
    on every package's source."""
    session.install("ruff>=0.6", "tomli; python_version < '3.11'")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", "tools/check_versions.py")
    # pyright[nodejs] brings node as a wheel (no download at run time); the
    # packages are installed with their test extras, which hold every optional
    # backend (envpool, gymnax, popgym, imageio, ...), so that all imports resolve.
    session.install("pyright[nodejs]>=1.1.380", *_editable(PACKAGES, "test"))
    session.run("pyright", *TYPED)


# The import name of each package, and a command that shows it works alone.
SMOKE = {
    "rtrl-cells": "import jax, rtrl_cells as rc; c = rc.ELSTM(input_size=2, "
    "hidden_size=3, key=jax.random.PRNGKey(0)); print(c.output_size)",
    "rtrl-envs": "import jax, rtrl_envs; e = rtrl_envs.make('memory/copy', "
    "num_envs=2, seed=0); print(e.reset(jax.random.PRNGKey(0))[1].first)",
    "rtrl-agents": "import rtrl_agents as ra; print(ra.R2ACConfig().learning_rate)",
    "rtrl-bench": "from rtrl_bench import main; main(['list'])",
}


def _build(session: nox.Session, outdir: Path) -> None:
    session.install("build")
    shutil.rmtree(outdir, ignore_errors=True)
    for name in PACKAGES:
        session.run(
            "python", "-m", "build", "--outdir", str(outdir), f"packages/{name}"
        )


@nox.session
def build(session: nox.Session) -> None:
    """sdists and wheels of every package into dist/ (what a release publishes)."""
    _build(session, ROOT / "dist")
    session.log(f"built {sorted(p.name for p in (ROOT / 'dist').iterdir())}")


@nox.session
def wheels(session: nox.Session) -> None:
    """Each package installed alone from dist/ into an empty virtualenv.

    Builds dist/, then for every package: a fresh virtualenv, ``pip install
    --find-links dist <package>`` (its declared dependencies only, sister
    packages from dist/, the rest from PyPI), a check that no undeclared sister
    package came along, and a smoke command of the package alone.
    """
    _build(session, ROOT / "dist")
    sisters = set(PACKAGES)
    for name in PACKAGES:
        with tempfile.TemporaryDirectory(prefix=f"wheel-{name}-") as tmp:
            venv = Path(tmp) / "venv"
            session.run(sys.executable, "-m", "venv", str(venv), external=True)
            py = str(venv / "bin" / "python")
            session.run(
                py, "-m", "pip", "install", "-q", "--upgrade", "pip", external=True
            )
            session.run(
                py,
                "-m",
                "pip",
                "install",
                "-q",
                "--find-links",
                str(ROOT / "dist"),
                name,
                external=True,
            )
            listed = session.run(
                py, "-m", "pip", "list", "--format=freeze", external=True, silent=True
            )
            got = {line.split("==")[0] for line in listed.split() if "==" in line}
            allowed = {name, *_sister_closure(name)}
            extra = sorted((got & sisters) - allowed)
            if extra:
                session.error(
                    f"{name} alone pulled in {extra}, which it does not declare"
                )
            session.run(py, "-c", SMOKE[name], external=True)


def _sister_closure(name: str) -> set[str]:
    """The sister packages ``name`` depends on, directly or not."""
    import tomllib

    out: set[str] = set()
    todo = [name]
    while todo:
        meta = tomllib.loads(
            (ROOT / "packages" / todo.pop() / "pyproject.toml").read_text()
        )
        for dep in meta["project"].get("dependencies", []):
            dep_name = (
                dep.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip()
            )
            if dep_name in PACKAGES and dep_name not in out:
                out.add(dep_name)
                todo.append(dep_name)
    return out


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
