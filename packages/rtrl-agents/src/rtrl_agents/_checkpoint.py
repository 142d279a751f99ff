"""Orbax checkpoints of a whole run state, keyed by path and checked on restore.

A checkpoint holds every array of the state under its path in the pytree
(``agent.params.core.F``), and beside them a JSON record of each array's shape,
dtype and SHA-256, the run's config and a few counters (updates, frames). Restoring into
a template (a freshly initialised state of the config now asked for) compares
all of it first and names the first difference in one line; nothing is cast,
reshaped or matched by position. A checkpoint that cannot be read is moved aside
with a one-line warning and the newest readable one is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._errors import (
    CheckpointMismatchError,
    CheckpointNotReadableError,
    CheckpointWarning,
    ConfigMismatchError,
    NonFiniteError,
)
from ._serialize import config_diff, format_diff

FORMAT = 2
"""Version of the checkpoint layout (1: arrays by position, rtrl-agents < 0.3)."""

UNREADABLE_SUFFIX = ".unreadable"


def _key_name(k: Any) -> str:
    for attr in ("name", "key", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def array_paths(tree: Any) -> list[tuple[str, Any]]:
    """``(path, array)`` for every array leaf of ``tree``, in leaf order.

    The path joins the pytree keys with dots: ``agent.params.core.F``,
    ``agent.opt_state.1.0.mu.torso.layers.0.weight``.
    """
    leaves, _ = jax.tree_util.tree_flatten_with_path(eqx.filter(tree, eqx.is_array))
    return [(".".join(_key_name(k) for k in path), x) for path, x in leaves]


def _unread_traces(path: str, wanted: list[tuple[str, Any]]) -> bool:
    """Whether a saved leaf is RTRL traces of a carry that this config keeps
    without traces: a truncated-BPTT core's carry, which checkpoints written
    before rtrl-agents 0.4 held as zeros that nothing reads. Restoring drops
    them; any other leaf the template lacks is still a mismatch."""
    head, sep, _ = path.partition(".traces.")
    if not sep or not any(k.startswith("carry") for k in head.split(".")):
        return False
    return not any(p.startswith(head + ".traces.") for p, _ in wanted)


def _describe(shape: Any, dtype: Any) -> str:
    return f"{tuple(int(d) for d in shape)} {np.dtype(dtype).name}"


class Restored(NamedTuple):
    """What :meth:`Checkpointer.restore_latest` found.

    Attributes:
        step: the checkpoint's step (updates done when it was saved).
        state: the template with its arrays replaced by the checkpoint's.
        info: the counters saved with it (``updates``, ``frames``, ...).
        config: the config saved with it (JSON form), or ``None``.
    """

    step: int
    state: Any
    info: dict[str, Any]
    config: Any


class _UnreadableError(Exception):
    """Internal: a checkpoint's files cannot be read."""


class Checkpointer:
    """Saves and restores every array of a pytree (``RunnerState``, ``AgentState``).

    Uses ``orbax.checkpoint.CheckpointManager`` with an absolute directory and
    keeps the last ``max_to_keep`` steps. Each checkpoint holds the arrays keyed
    by their pytree path, their shapes and dtypes, the run's config and counters.
    :meth:`restore` goes into a template of the same structure (a freshly
    initialised state), so non-array parts (the network's static configuration)
    come from code and arrays from disk, bit for bit, after checking that every
    path, shape and dtype agrees.

    Args:
        directory: where checkpoints live (made absolute; created if missing).
        max_to_keep: how many of the latest checkpoints to keep.

    Raises:
        ImportError: orbax-checkpoint is not installed (names the extra).
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
        with _quiet_orbax():
            self._manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=max_to_keep,
                    create=True,
                    # Half-written steps of a killed save are removed on open.
                    cleanup_tmp_directories=True,
                ),
            )

    def save(
        self,
        step: int,
        tree: Any,
        *,
        config: Any = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        """Saves the arrays of ``tree`` as checkpoint ``step`` and waits for it.

        Args:
            step: the checkpoint's step (the updates done).
            tree: the state; its array leaves are saved under their paths.
            config: the run's config as JSON (see :func:`config_to_json`),
                compared by :meth:`restore` on resume.
            info: JSON counters kept beside it (``frames``, ...).

        Raises:
            NonFiniteError: a floating-point array holds NaN or Inf (nothing is
                written: a checkpoint is never worse than the one before).
        """
        ocp = self._ocp
        nested: dict[str, Any] = {}
        leaves: dict[str, dict[str, Any]] = {}
        for path, x in array_paths(tree):
            a = np.asarray(x)
            if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
                raise NonFiniteError(
                    f"{path} holds non-finite values at update {step}: not saved; "
                    "the last good checkpoint stays."
                )
            leaves[path] = {
                "shape": list(a.shape),
                "dtype": a.dtype.name,
                "sha256": _digest(a),
            }
            node = nested
            *parents, last = path.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[last] = a
        meta = {
            "format": FORMAT,
            "leaves": leaves,
            "config": config,
            "info": dict(info or {}),
        }
        self._manager.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(nested), meta=ocp.args.JsonSave(meta)
            ),
        )
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        """The newest saved step, or ``None``."""
        with _quiet_orbax():
            return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Every kept step, oldest first."""
        with _quiet_orbax():
            return sorted(self._manager.all_steps())

    def read_meta(self, step: int) -> dict[str, Any]:
        """The JSON record saved with checkpoint ``step``.

        Raises:
            CheckpointNotReadableError: it cannot be read.
        """
        try:
            return self._read_meta(step)
        except _UnreadableError as e:
            raise CheckpointNotReadableError(str(e)) from None

    def _read_meta(self, step: int) -> dict[str, Any]:
        ocp = self._ocp
        try:
            with _quiet_orbax():
                got = self._manager.restore(
                    int(step), args=ocp.args.Composite(meta=ocp.args.JsonRestore())
                )
            meta = dict(got["meta"])
        except Exception as e:  # orbax, tensorstore and json all raise their own
            raise _UnreadableError(_first_line(e)) from e
        if meta.get("format") != FORMAT or not isinstance(meta.get("leaves"), dict):
            raise CheckpointMismatchError(
                f"checkpoint {step} under {self.directory} has layout "
                f"{meta.get('format', 1)}, this version reads layout {FORMAT} "
                "(rtrl-agents >= 0.3 keys arrays by path): start a new run, or "
                "restore it with the rtrl-agents version that wrote it."
            )
        return meta

    def restore(
        self,
        template: Any,
        step: int | None = None,
        *,
        config: Any = None,
        allow_config_change: bool = False,
    ) -> Any:
        """``template`` with its arrays replaced by checkpoint ``step``.

        Args:
            template: a state of the same structure (freshly initialised).
            step: the checkpoint; ``None``: the newest readable one (see
                :meth:`restore_latest`).
            config: the config now asked for (JSON form); compared with the
                saved one if given.
            allow_config_change: accept a ``config`` that differs.

        Raises:
            FileNotFoundError: there is no checkpoint.
            ConfigMismatchError: ``config`` differs from the saved one.
            CheckpointMismatchError: a path, shape or dtype differs (the message
                names the first).
            CheckpointNotReadableError: the checkpoint (every one, if
                ``step`` is ``None``) cannot be read.
        """
        if step is None:
            found = self.restore_latest(
                template, config=config, allow_config_change=allow_config_change
            )
            if found is None:
                raise FileNotFoundError(f"no checkpoint under {self.directory}")
            return found.state
        try:
            return self._restore_step(
                template, int(step), config, allow_config_change
            ).state
        except _UnreadableError as e:
            raise CheckpointNotReadableError(
                f"checkpoint {step} under {self.directory} cannot be read: {e}"
            ) from None

    def restore_latest(
        self,
        template: Any,
        *,
        config: Any = None,
        allow_config_change: bool = False,
    ) -> Restored | None:
        """The newest checkpoint that can be read, restored into ``template``.

        A checkpoint whose files cannot be read (truncated, garbled, half
        deleted) is renamed ``<step>.unreadable`` with a one-line
        :class:`CheckpointWarning`, and the next older one is tried. A readable
        checkpoint that does not fit ``template`` or ``config`` is an error, not
        a reason to fall back.

        Returns:
            The restored state with its step, counters and config, or ``None``
            if there is no checkpoint at all.

        Raises:
            ConfigMismatchError, CheckpointMismatchError: as :meth:`restore`.
            CheckpointNotReadableError: checkpoints exist but none can be read.
        """
        steps = sorted(self.all_steps(), reverse=True)
        skipped = []
        for step in steps:
            try:
                return self._restore_step(template, step, config, allow_config_change)
            except _UnreadableError as e:
                moved = self._move_aside(step)
                skipped.append(str(step))
                warnings.warn(
                    f"checkpoint {step} under {self.directory} cannot be read ({e}); "
                    f"moved it to {os.path.basename(moved)} and trying an older one.",
                    CheckpointWarning,
                    stacklevel=2,
                )
        if skipped:
            raise CheckpointNotReadableError(
                f"none of the checkpoints under {self.directory} can be read (steps "
                f"{', '.join(skipped)}, moved aside as <step>{UNREADABLE_SUFFIX}): "
                "resume again to start this run over, or use another folder."
            )
        return None

    def _restore_step(
        self, template: Any, step: int, config: Any, allow_config_change: bool
    ) -> Restored:
        ocp = self._ocp
        meta = self._read_meta(step)
        where = f"checkpoint {step} under {self.directory}"
        saved_config = meta.get("config")
        if config is not None and saved_config is not None:
            diff = config_diff(saved_config, config)
            if diff and not allow_config_change:
                raise ConfigMismatchError(
                    f"{where} was written with another config ({format_diff(diff)}): "
                    "resume with that config, allow the change explicitly, or start "
                    "a new run in another folder."
                )
        saved = meta["leaves"]
        wanted = array_paths(template)
        for path, x in wanted:
            got = saved.get(path)
            if got is None:
                raise CheckpointMismatchError(
                    f"this config builds {path} {_describe(x.shape, x.dtype)}, which "
                    f"{where} lacks: restore with the config it was written with, or "
                    "start a new run in another folder."
                )
            if tuple(got["shape"]) != tuple(x.shape) or np.dtype(
                got["dtype"]
            ) != np.dtype(x.dtype):
                raise CheckpointMismatchError(
                    f"checkpoint {path} is {_describe(got['shape'], got['dtype'])}, "
                    f"this config builds {_describe(x.shape, x.dtype)} ({where}): "
                    "restore with the config it was written with, or start a new run "
                    "in another folder."
                )
        extra = sorted(set(saved) - {p for p, _ in wanted})
        # Read (orbax restores whole trees) and then dropped.
        dropped = [p for p in extra if _unread_traces(p, wanted)]
        extra = [p for p in extra if p not in dropped]
        if extra:
            s = saved[extra[0]]
            raise CheckpointMismatchError(
                f"{where} holds {extra[0]} {_describe(s['shape'], s['dtype'])}, which "
                "this config does not build: restore with the config it was written "
                "with, or start a new run in another folder."
            )
        abstract: dict[str, Any] = {}
        shapes = [(path, x.shape, x.dtype) for path, x in wanted]
        shapes += [(p, saved[p]["shape"], saved[p]["dtype"]) for p in dropped]
        for path, shape, dtype in shapes:
            node = abstract
            *parents, last = path.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[last] = np.zeros(tuple(shape), np.dtype(dtype))
        try:
            with _quiet_orbax():
                got = self._manager.restore(
                    step,
                    args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)),
                )["state"]
            new = []
            for path, x in wanted:
                node = got
                for p in path.split("."):
                    node = node[p]
                a = np.asarray(node)
                if a.shape != tuple(x.shape) or a.dtype != np.dtype(x.dtype):
                    raise ValueError(
                        f"{path} came back as {_describe(a.shape, a.dtype)}"
                    )
                digest = saved[path].get("sha256")
                if digest is not None and digest != _digest(a):
                    raise ValueError(f"{path} does not match its checksum")
                new.append(jnp.asarray(a))
        except Exception as e:  # orbax and tensorstore raise their own
            raise _UnreadableError(_first_line(e)) from e
        dyn, static = eqx.partition(template, eqx.is_array)
        treedef = jax.tree.structure(dyn)
        state = eqx.combine(jax.tree.unflatten(treedef, new), static)
        return Restored(step, state, dict(meta.get("info") or {}), saved_config)

    def _move_aside(self, step: int) -> str:
        src = os.path.join(self.directory, str(step))
        dst = src + UNREADABLE_SUFFIX
        n = 1
        while os.path.exists(dst):
            n += 1
            dst = f"{src}{UNREADABLE_SUFFIX}{n}"
        if os.path.exists(src):
            os.rename(src, dst)
        with _quiet_orbax():
            self._manager.reload()
        return dst

    def close(self) -> None:
        """Waits for pending writes and releases the manager."""
        self._manager.close()


def _digest(a: np.ndarray) -> str:
    """The SHA-256 of an array's bytes: storage without checksums of its own can
    return garbled bytes as numbers, which restore must not take."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


class _ShortSaveWaits(logging.Filter):
    """Drops two orbax log lines that say nothing the user needs:

    * "Waiting for previous save to complete took X seconds" below a minute:
      each save here is waited for before training goes on, so a wait of
      seconds on a busy machine is expected, and the line advising to
      checkpoint less often would break the progress bar at every report;
    * "Failed to json parse Metadata file ...": a damaged checkpoint, which
      restore reports in its own one-line warning (and sets aside) when it
      reaches it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Failed to json parse Metadata file"):
            return False
        if not message.startswith("Waiting for previous save to complete took"):
            return True
        try:
            return float(message.split("took", 1)[1].split()[0]) >= 60.0
        except (IndexError, ValueError):
            return True


def _install_save_wait_filter() -> None:
    logger = logging.getLogger("absl")
    if not any(isinstance(f, _ShortSaveWaits) for f in logger.filters):
        logger.addFilter(_ShortSaveWaits())


_install_save_wait_filter()


@contextlib.contextmanager
def _quiet_orbax():
    """Orbax logs its own warnings about a damaged checkpoint through absl; while
    we try to read one, our one-line warning says it instead."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    _drop_closed_loop_tracebacks()
    try:
        yield
    finally:
        logger.setLevel(level)


def _is_closed_loop(exc: BaseException | None) -> bool:
    return isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"


def _drop_closed_loop_tracebacks() -> None:
    """When a read fails, tensorstore completes the read's other pending futures
    after orbax has closed the asyncio loop that awaited them; each completion
    raises ``RuntimeError('Event loop is closed')`` in tensorstore's thread,
    which Python prints as a traceback (up to dozens per damaged checkpoint).
    Those, and only those, are dropped; every other error still reaches the
    hooks that were installed before (installed once per process)."""
    if getattr(sys.excepthook, "_rtrl_filter", False):
        return
    previous = sys.excepthook

    def excepthook(kind, exc, tb):
        if not _is_closed_loop(exc):
            previous(kind, exc, tb)

    excepthook._rtrl_filter = True  # type: ignore[attr-defined]
    sys.excepthook = excepthook
    previous_unraisable = sys.unraisablehook

    def unraisablehook(info):
        if not _is_closed_loop(info.exc_value):
            previous_unraisable(info)

    sys.unraisablehook = unraisablehook
    previous_thread = threading.excepthook

    def thread_excepthook(args):
        if not _is_closed_loop(args.exc_value):
            previous_thread(args)

    threading.excepthook = thread_excepthook


def _first_line(e: BaseException, limit: int = 120) -> str:
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    text = f"{type(e).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
