"""Every field of an experiment's config, settable from the command line.

``rtrl-bench run NAME --agent.learning-rate 1e-3 --core.hidden-size 64`` sets
those fields in the config of every variant it runs (each variant keeps its own
values for the rest); ``--config FILE`` starts from the config of another run
(its ``config.json``) instead of the registry's. The flags come from the frozen
config dataclasses themselves (their fields, types, docstrings and defaults),
through tyro, so they cannot drift from the configs; the values are validated by
the dataclasses' own checks. Shorthands: ``--core.X``, ``--torso.X`` and
``--heads.X`` stand for ``--agent.network.core.X`` and so on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
from pathlib import Path
from typing import Any

from ._experiments import AgentConfig, EnvConfig, Experiment

SHORTHANDS = {
    "--core.": "--agent.network.core.",
    "--torso.": "--agent.network.torso.",
    "--heads.": "--agent.network.heads.",
}


_WHOLE = re.compile(r"^[+-]?\d+(\.\d*)?[eE]\+?\d+$")


def expand_shorthands(args: list[str]) -> list[str]:
    """``--core.hidden-size`` -> ``--agent.network.core.hidden-size`` (and the
    other shorthands); whole numbers written with an exponent (``2e6``) become
    plain integers, which int fields take and float fields read the same."""
    out = []
    for a in args:
        for short, long in SHORTHANDS.items():
            if a.startswith(short):
                a = long + a[len(short) :]
                break
        if _WHOLE.match(a) and float(a).is_integer() and abs(float(a)) < 1e18:
            a = str(int(float(a)))
        out.append(a)
    return out


def _wrapper(config_type: type) -> type:
    return dataclasses.make_dataclass(
        "Overrides", [("agent", config_type)], frozen=True
    )


def _tyro(cls: type, default: Any, args: list[str], prog: str) -> Any:
    """``tyro.cli``, its errors turned into one-line ``ValueError``s."""
    try:
        import tyro
    except ImportError as e:  # pragma: no cover - a dependency of rtrl-bench
        raise ImportError("config overrides need tyro: pip install tyro") from e
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return tyro.cli(cls, default=default, args=args, prog=prog)
    except SystemExit as e:
        if e.code in (0, None):
            raise
        raise ValueError(condense(err.getvalue(), prog)) from None


def condense(text: str, prog: str) -> str:
    """tyro's boxed error message as one line."""
    lines = [re.sub(r"[│╭╮╰╯]", "", line).strip() for line in text.splitlines()]
    title = next((line.strip("─ ") for line in lines if line.strip("─ ")), "")
    body = []
    for line in lines[1:]:
        if not line or set(line) <= {"─", " "}:
            if body:
                break
            continue
        body.append(line)
    message = " ".join(body) or title
    # tyro lists an unknown flag and its value as two "options"; name the flags.
    if message.startswith("Unrecognized options:"):
        words = [w.strip(",") for w in message.split(":", 1)[1].split()]
        flags = [w for w in words if w.startswith("--")]
        message = f"unknown option{'s' if len(flags) > 1 else ''} {', '.join(flags)}"
    message = re.sub(r"^Error parsing [\w.-]+: ", "", message)
    if "Perhaps you meant:" in lines:
        i = lines.index("Perhaps you meant:")
        guess = lines[i + 1].split()[0] if i + 1 < len(lines) else ""
        if guess:
            message += f"; did you mean {guess}?"
    return f"{message} (see {prog} --help)"


def override(config: Any, args: list[str], prog: str) -> Any:
    """``config`` with the fields named in ``args`` (``--agent.a.b VALUE``) set.

    Raises:
        ValueError: an unknown flag, a value of the wrong type, or a value the
            config's validation refuses (one line).
    """
    if not args:
        return config
    cls = _wrapper(type(config))
    return _tyro(cls, cls(config), expand_shorthands(args), prog).agent


def print_help(config: Any, prog: str) -> None:
    """Prints every overridable field of ``config`` with its default."""
    cls = _wrapper(type(config))
    with contextlib.suppress(SystemExit):
        _tyro(cls, cls(config), ["--help"], prog)


def read_config_file(path: str | Path) -> tuple[AgentConfig, EnvConfig | None, dict]:
    """The agent config (and environment, if any) in ``path``.

    Accepts the ``config.json`` of a run (or ``result.json``), a ``RunConfig``
    as JSON, or an agent config alone (``{"_type": "R2ACConfig", ...}``).

    Returns:
        ``(agent, env or None, the run's fields such as experiment and
        variant)``.

    Raises:
        ValueError: the file is not JSON or holds no config (one line).
        FileNotFoundError: there is no such file.
    """
    import rtrl_agents as ra

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(
            f"--config {path} is not JSON ({e.msg}, line {e.lineno})"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]
    if not isinstance(data, dict):
        raise ValueError(f"--config {path} holds no config object")
    if "agent" in data:
        agent = ra.config_from_json(AgentConfig, data["agent"], where=f"{path}: agent")
        env = (
            ra.config_from_json(EnvConfig, data["env"], where=f"{path}: env")
            if "env" in data
            else None
        )
        return agent, env, data
    if "_type" in data:
        return ra.config_from_json(AgentConfig, data, where=str(path)), None, {}
    raise ValueError(
        f"--config {path} holds neither a run's config (config.json) nor an agent "
        "config with its _type"
    )


def parse_env_options(items: list[str]) -> tuple[tuple[str, Any], ...]:
    """``["memory_length=20", "obs_indices=[0, 2]"]`` -> ``(("memory_length", 20),
    ("obs_indices", (0, 2)))``: values are JSON (numbers, booleans, lists),
    anything else a string."""
    out = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--env.option {item!r}: write KEY=VALUE")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if isinstance(value, list):
            value = tuple(value)
        out.append((key.strip(), value))
    return tuple(out)


def configure_env(
    exp: Experiment,
    name: str | None,
    num_envs: int | None,
    options: list[str],
) -> Experiment:
    """The experiment on another environment: ``--env.name``, ``--env.num-envs``
    and ``--env.option KEY=VALUE`` (added to the experiment's options, replacing
    one of the same name; also for the held-out evaluation)."""
    if name is None and num_envs is None and not options:
        return exp
    env = exp.env
    if name is not None and name != env.name:
        env = dataclasses.replace(env, name=name, options=(), eval_options=())
    if num_envs is not None:
        env = dataclasses.replace(env, num_envs=num_envs)
    if options:
        extra = parse_env_options(options)
        keys = {k for k, _ in extra}

        def merged(base: tuple) -> tuple:
            return tuple((k, v) for k, v in base if k not in keys) + extra

        env = dataclasses.replace(
            env,
            options=merged(env.options),
            eval_options=merged(env.eval_options) if env.eval_options else (),
        )
    return dataclasses.replace(exp, env=env)


def configure(
    exp: Experiment,
    variants: tuple[str, ...] | None,
    overrides: list[str],
    config_file: str | None,
    prog: str,
) -> tuple[Experiment, tuple[str, ...] | None]:
    """The experiment with ``--config`` and the overrides applied.

    Returns:
        ``(experiment, variants)``: the experiment whose chosen variants carry
        their new configs, and the variants to run (with ``--config`` of a run
        and no ``--variants``: that run's variant).
    """
    if config_file is not None:
        agent, env, fields = read_config_file(config_file)
        if fields.get("experiment") not in (None, exp.name):
            raise ValueError(
                f"--config {config_file} is a config of {fields['experiment']!r}: "
                f"run {fields['experiment']} with it, not {exp.name}"
            )
        if variants is None and fields.get("variant"):
            variants = (fields["variant"],)
        names = variants or tuple(v.name for v in exp.variants)
        exp = dataclasses.replace(
            exp,
            env=env or exp.env,
            variants=tuple(
                dataclasses.replace(v, config=agent) if v.name in names else v
                for v in exp.variants
            ),
        )
    if overrides:
        names = variants or tuple(v.name for v in exp.variants)
        for name in names:
            exp.variant(name)  # an unknown name is named before any parsing
        exp = dataclasses.replace(
            exp,
            variants=tuple(
                dataclasses.replace(v, config=override(v.config, overrides, prog))
                if v.name in names
                else v
                for v in exp.variants
            ),
        )
    return exp, variants
