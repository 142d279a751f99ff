"""A run is a record you can trust: one folder whose config, checkpoints, logs and
result always agree.

:class:`RunRecord` is what every training loop (the drivers here, rtrl-bench's
sequence learners) does around its updates:

* **one process per folder**: an exclusive lock (``flock`` on ``.lock``); a
  second process gets :class:`RunInUseError` at once;
* **the config is part of the run**: ``config.json`` is written at the start;
  a folder that already holds a run is refused unless resuming, and resuming
  with another config is refused (naming the fields) unless the change is
  explicitly allowed, in which case the change is recorded in ``config.json``;
* **exactly-once logs**: on resume ``metrics.jsonl`` and the TensorBoard event
  files are cut back to the restored checkpoint's step, so a killed and resumed
  run holds the same records as one never killed;
* **checkpoints often enough, with a fallback**: saved every ``N`` updates or
  ``S`` seconds of wall time and at the end, the last ``K`` kept; an unreadable
  newest checkpoint falls back to the newest readable one (see
  :class:`~rtrl_agents.Checkpointer`); non-finite states are never saved.

Layout of a folder (``log_dir``)::

    config.json             {"config": ..., "changes": [...], "provenance": ...}
    metrics.jsonl           one JSON record per report ("step" = frames)
    events.out.tfevents.*   TensorBoard scalars, the same records
    .lock                   the lock (holds the owner's pid)
"""

from __future__ import annotations

import contextlib
import glob
import importlib.metadata as md
import json
import os
import platform
import struct
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from ._checkpoint import Checkpointer
from ._errors import ConfigMismatchError, RunExistsError, RunInUseError
from ._serialize import config_diff, format_diff

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = ".lock"
EVENTS_GLOB = "events.out.tfevents.*"


class RunLock:
    """An exclusive, per-process re-entrant lock on a folder.

    ``fcntl.flock`` on ``<directory>/.lock``: the kernel releases it when the
    owner exits, however it exits (a killed run leaves no stale lock). Taking it
    again in the same process nests.

    Args:
        directory: the folder (created if missing).

    Raises:
        RunInUseError: another process holds it (on ``acquire``).
    """

    _held: ClassVar[dict[str, list[int]]] = {}

    def __init__(self, directory: str):
        self.directory = os.path.realpath(directory)

    def acquire(self) -> RunLock:
        held = self._held.get(self.directory)
        if held is not None:
            held[1] += 1
            return self
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            self._held[self.directory] = [-1, 1]
            return self
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunInUseError(
                f"{self.directory} is in use by another process ({owner}): wait for "
                "it to finish, or use another folder."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {platform.node()}\n".encode(), 0)
        self._held[self.directory] = [fd, 1]
        return self

    def release(self) -> None:
        held = self._held.get(self.directory)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del self._held[self.directory]
            if held[0] >= 0:
                os.close(held[0])  # closing the descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# ----------------------------------------------------------------- the logs


def read_metrics(path: str) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``; a torn last line (a kill while it was
    written) is left out.

    Raises:
        ValueError: a line before the last is not JSON (names the line).
    """
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # the torn last record of a killed run
            raise ValueError(
                f"{path} line {i + 1} is not JSON: the file is damaged; move it "
                "away to start the log over."
            ) from None
    return out


def _replace_atomically(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def cut_metrics(path: str, max_step: int) -> list[dict[str, Any]]:
    """Keeps the records of ``path`` with ``step <= max_step``; returns them."""
    records = read_metrics(path)
    kept = [r for r in records if int(r.get("step", 0)) <= max_step]
    if os.path.exists(path):
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
        with open(path, "rb") as f:
            if f.read() != text.encode():
                _replace_atomically(path, text.encode())
    return kept


def _event_records(data: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of each whole TFRecord in ``data`` (a torn tail is left
    out)."""
    out, pos = [], 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        end = pos + 12 + length + 4
        if end > len(data):
            break
        out.append((pos, end))
        pos = end
    return out


def cut_event_files(log_dir: str, max_step: int) -> None:
    """Drops the TensorBoard events with ``step > max_step`` from the event files
    directly in ``log_dir`` (records are copied byte for byte, checksums
    included; a torn last record is dropped)."""
    from tensorboardX.proto import event_pb2

    for path in sorted(glob.glob(os.path.join(log_dir, EVENTS_GLOB))):
        with open(path, "rb") as f:
            data = f.read()
        kept = bytearray()
        for start, end in _event_records(data):
            event = event_pb2.Event.FromString(  # pyright: ignore[reportAttributeAccessIssue]
                data[start + 12 : end - 4]
            )
            if event.step <= max_step or event.HasField("file_version"):
                kept += data[start:end]
        if bytes(kept) != data:
            _replace_atomically(path, bytes(kept))


def _has_logs(log_dir: str) -> bool:
    return bool(read_metrics(os.path.join(log_dir, METRICS_FILE))) or bool(
        glob.glob(os.path.join(log_dir, EVENTS_GLOB))
    )


def holds_run(directory: str) -> bool:
    """Whether ``directory`` holds (part of) a run: a ``config.json``, metrics or
    event files."""
    return os.path.exists(os.path.join(directory, CONFIG_FILE)) or _has_logs(directory)


def read_run_config(directory: str) -> dict[str, Any] | None:
    """The ``config.json`` of a run folder (``None`` if it has none).

    Raises:
        ValueError: the file is not valid JSON (names it).
    """
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path} is not valid JSON ({e.msg}; line {e.lineno}): restore it or "
            "use another folder."
        ) from None
    if not isinstance(data, dict) or "config" not in data:
        raise ValueError(f"{path} holds no 'config': restore it or use another folder.")
    return data


def default_provenance() -> dict[str, Any]:
    """Versions of the packages a run depends on, Python, machine and time."""
    versions = {}
    for pkg in ("rtrl-cells", "rtrl-agents", "jax", "jaxlib", "equinox", "optax"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {
        "versions": versions,
        "python": platform.python_version(),
        "machine": platform.platform(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


class RunRecord:
    """The folder, config, logs and checkpoints of one run (module docstring).

    Use as a context manager around a training loop::

        with RunRecord(log_dir, ckpt_dir, run_config=cfg, resume=True) as rec:
            state, start = rec.begin(template)   # restore + cut logs, or start
            ...                                  # updates, rec.writer.write(...)
            rec.maybe_save(done, state, frames, final=done == total)

    Args:
        log_dir: the run folder (``config.json``, ``metrics.jsonl``, events), or
            ``None`` (no logs, no ``config.json``).
        checkpoint_dir: where checkpoints go, or ``None`` (no checkpoints).
        run_config: the run's config in JSON form; written to ``config.json``,
            stored with every checkpoint and compared on resume.
        resume: continue the run in these folders from its newest readable
            checkpoint (or from the start, if it has none). Without it, folders
            that already hold a run are refused.
        allow_config_change: on resume, accept a ``run_config`` that differs
            from the recorded one (the change is recorded in ``config.json``).
        checkpoint_every: save every this many updates (``None``: not by count).
        checkpoint_seconds: save when this many seconds of wall time passed
            since the last save (``None``: not by time).
        keep_checkpoints: how many of the latest checkpoints to keep.
        provenance: JSON kept in ``config.json`` (default
            :func:`default_provenance`).

    Raises (from ``__enter__`` and :meth:`begin`):
        RunInUseError: another process holds a folder.
        RunExistsError: a folder holds a run and ``resume`` is false.
        ConfigMismatchError: resuming with a differing config not allowed.
        CheckpointMismatchError: the checkpoint does not fit the template.
    """

    def __init__(
        self,
        log_dir: str | None,
        checkpoint_dir: str | None,
        *,
        run_config: Any,
        resume: bool,
        allow_config_change: bool = False,
        checkpoint_every: int | None = None,
        checkpoint_seconds: float | None = None,
        keep_checkpoints: int = 3,
        provenance: Mapping[str, Any] | None = None,
    ):
        self.log_dir = None if log_dir is None else os.path.abspath(log_dir)
        self.checkpoint_dir = (
            None if checkpoint_dir is None else os.path.abspath(checkpoint_dir)
        )
        self.run_config = run_config
        self.resume = resume
        self.allow_config_change = allow_config_change
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.keep_checkpoints = keep_checkpoints
        self.provenance = provenance
        self.checkpointer: Checkpointer | None = None
        self.history: list[dict[str, Any]] = []
        self.start_step = 0
        self.start_info: dict[str, Any] = {}
        self.changes: list[tuple[str, Any, Any]] = []
        self._stack = contextlib.ExitStack()
        self._last_saved = 0
        self._last_time = time.monotonic()

    # -- folders --------------------------------------------------------------

    @classmethod
    def from_loop(
        cls,
        log_dir: str | None,
        checkpoint_dir: str | None,
        loop: Any,
        *,
        run_config: Any,
        resume: bool,
        allow_config_change: bool = False,
        provenance: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """The record of a run whose checkpoint periods and depth a
        :class:`~rtrl_agents.LoopConfig` sets (``checkpoint_every``,
        ``checkpoint_seconds``, ``keep_checkpoints``)."""
        return cls(
            log_dir,
            checkpoint_dir,
            run_config=run_config,
            resume=resume,
            allow_config_change=allow_config_change,
            checkpoint_every=loop.checkpoint_every,
            checkpoint_seconds=loop.checkpoint_seconds,
            keep_checkpoints=loop.keep_checkpoints,
            provenance=provenance,
        )

    def __enter__(self) -> RunRecord:
        try:
            for d in dict.fromkeys(
                d for d in (self.log_dir, self.checkpoint_dir) if d is not None
            ):
                self._stack.enter_context(RunLock(d))
            if self.checkpoint_dir is not None:
                self.checkpointer = Checkpointer(
                    self.checkpoint_dir, self.keep_checkpoints
                )
                self._stack.callback(self.checkpointer.close)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def begin(self, template: Any, num_updates: int | None = None) -> tuple[Any, int]:
        """Checks the folders, restores or starts, cuts the logs.

        Everything is checked before anything is written: a refused resume
        leaves the folders as they were.

        Args:
            template: the freshly initialised state (its structure, shapes and
                dtypes are what a checkpoint must match).
            num_updates: the run's length; a checkpoint past it is refused.

        Returns:
            ``(state, updates_done)``: the restored state and its step, or
            ``(template, 0)``. ``self.history`` holds the records kept from
            before (what the run logged up to that step); ``self.start_info``
            the checkpoint's counters (``frames``); ``self.changes`` the config
            fields that changed since the restored checkpoint (allowed
            changes only; the caller applies what lives in state, such as
            step sizes).
        """
        recorded = None
        if self.log_dir is not None:
            recorded = read_run_config(self.log_dir)
            if recorded is None and _has_logs(self.log_dir):
                raise RunExistsError(
                    f"{self.log_dir} holds metrics but no {CONFIG_FILE} (a run of an "
                    "older version?): use another folder (nothing was changed)."
                )
        ckpt_steps = self.checkpointer.all_steps() if self.checkpointer else []
        if not self.resume and (recorded is not None or ckpt_steps):
            where = self.log_dir if recorded is not None else self.checkpoint_dir
            raise RunExistsError(
                f"{where} already holds a run: resume it, or use another folder "
                "(nothing was deleted)."
            )
        changes = list(recorded.get("changes", [])) if recorded else []
        diff = []
        if recorded is not None:
            diff = config_diff(recorded["config"], self.run_config)
            if diff and not self.allow_config_change:
                raise ConfigMismatchError(
                    f"{self.log_dir} was made with another config "
                    f"({format_diff(diff)}): resume with that config, allow the "
                    "change explicitly, or use another folder."
                )
        state, done = template, 0
        if self.checkpointer is not None and self.resume:
            found = self.checkpointer.restore_latest(
                template,
                config=self.run_config,
                allow_config_change=self.allow_config_change,
            )
            if found is not None:
                state, done = found.state, found.step
                self.start_info = found.info
                if not diff and found.config is not None:
                    diff = config_diff(found.config, self.run_config)
        if num_updates is not None and done > num_updates:
            frames = self.start_info.get("frames")
            at = f"update {done}" + (f" ({frames} frames)" if frames else "")
            raise ValueError(
                f"the run in {self.checkpoint_dir} has trained to {at}, past this "
                f"config's num_updates={num_updates}: ask for at least as much "
                "(nothing was changed)."
            )
        if done == 0 and recorded is not None and self.checkpointer is None:
            raise RunExistsError(
                f"{self.log_dir} already holds a run that has no checkpoints to "
                "resume from: use another folder (nothing was deleted)."
            )
        self.start_step = self._last_saved = done
        self.changes = diff if done else []
        if self.log_dir is not None:
            frames = int(self.start_info.get("frames", 0)) if done else 0
            # Only what the restored state had logged stays: records after it
            # were written by a run that was killed before its next checkpoint.
            self.history = cut_metrics(
                os.path.join(self.log_dir, METRICS_FILE), frames if done else -1
            )
            cut_event_files(self.log_dir, frames if done else -1)
            if diff:
                changes.append({"updates": done, "fields": [list(d) for d in diff]})
            self._write_config(changes, recorded)
        self._last_time = time.monotonic()
        return state, done

    def _write_config(self, changes: list, recorded: dict | None) -> None:
        payload = {
            "config": self.run_config,
            "changes": changes,
            "provenance": (
                dict(self.provenance)
                if self.provenance is not None
                else default_provenance()
            ),
        }
        if recorded is not None and recorded.get("created"):
            payload["created"] = recorded["created"]
        else:
            payload["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        data = json.dumps(payload, indent=2, sort_keys=False).encode()
        assert self.log_dir is not None  # only called with a log folder
        _replace_atomically(os.path.join(self.log_dir, CONFIG_FILE), data)

    def resume_line(self, num_updates: int) -> str:
        """``resuming from checkpoint 600 of 1575 updates, 76,800 frames (dir)``:
        what :meth:`begin` restored."""
        frames = self.start_info.get("frames")
        where = f", {frames:,} frames" if isinstance(frames, int) else ""
        return (
            f"resuming from checkpoint {self.start_step} of {num_updates} updates"
            f"{where} ({self.checkpoint_dir})"
        )

    # -- checkpoints ----------------------------------------------------------

    def due(self, done: int, final: bool = False) -> bool:
        """Whether a checkpoint is due after ``done`` updates."""
        if self.checkpointer is None or done <= self._last_saved:
            return False
        if final:
            return True
        every, secs = self.checkpoint_every, self.checkpoint_seconds
        if every and done - self._last_saved >= every:
            return True
        return bool(secs) and time.monotonic() - self._last_time >= secs

    def maybe_save(
        self, done: int, state: Any, frames: int, *, final: bool = False
    ) -> bool:
        """Saves checkpoint ``done`` if one is due (see :meth:`due`).

        ``state`` may be a zero-argument callable that builds it (called only
        when a checkpoint is due).

        Raises:
            NonFiniteError: the state holds NaN or Inf (nothing is saved).
        """
        if not self.due(done, final):
            return False
        self.save(done, state() if callable(state) else state, frames)
        return True

    def save(self, done: int, state: Any, frames: int) -> None:
        """Saves checkpoint ``done`` now."""
        assert self.checkpointer is not None
        self.checkpointer.save(
            done,
            state,
            config=self.run_config,
            info={"updates": int(done), "frames": int(frames), "time": time.time()},
        )
        self._last_saved = done
        self._last_time = time.monotonic()
