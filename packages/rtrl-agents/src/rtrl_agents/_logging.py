"""Metric writers: TensorBoard event files, JSON lines, a progress bar.

Backends are imported lazily inside the writer that needs them, with an
ImportError naming the extra to install. No TensorFlow: event files are written
with tensorboardX.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class MetricWriter(Protocol):
    """Receives one dict of scalars per report (every ``K`` updates)."""

    def write(self, step: int, scalars: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


class TensorBoardWriter:
    """Scalars to a TensorBoard event file under ``log_dir`` (tensorboardX).

    Tags are ``<prefix>/<name>``, except names that carry their own section
    (``eval/success``), which are kept as they are; the step is the number of
    environment frames. Every writer opens its own event file (a resumed run
    adds one), named apart by ``filename_suffix`` (default: pid and a random
    tag), since tensorboardX names files by the second they were opened in and
    truncates on open.
    """

    def __init__(
        self, log_dir: str, prefix: str = "train", filename_suffix: str | None = None
    ):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError(
                "TensorBoard logging needs tensorboardX: "
                "pip install 'rtrl-agents[tensorboard]'"
            ) from e
        self.log_dir = os.path.abspath(log_dir)
        self.prefix = prefix
        if filename_suffix is None:
            filename_suffix = f".{os.getpid()}.{uuid.uuid4().hex[:6]}"
        self._writer = SummaryWriter(
            logdir=self.log_dir, filename_suffix=filename_suffix
        )

    def _tag(self, name: str) -> str:
        return name if "/" in name else f"{self.prefix}/{name}"

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        for name, value in scalars.items():
            if isinstance(value, int | float) and math.isfinite(value):
                self._writer.add_scalar(self._tag(name), value, step)
        self._writer.flush()

    def write_config(
        self,
        config: Any,
        metrics: Sequence[str] = ("train/episode_return", "result/score"),
    ) -> None:
        """The run's config as text (tag ``config``) and as hyperparameters of the
        hparams plugin (each leaf under its dotted path), with ``metrics`` the
        scalar tags its table shows beside them. Written at step 0."""
        from tensorboardX.summary import hparams

        text = json.dumps(config, indent=2, sort_keys=True)
        self._writer.add_text("config", f"```json\n{text}\n```", 0)
        flat: dict[str, Any] = {}
        _flatten(config, "", flat)
        hp = {
            k: v if isinstance(v, bool | int | float | str) else json.dumps(v)
            for k, v in flat.items()
        }
        exp, ssi, _ = hparams(hp, dict.fromkeys(metrics, 0.0))
        file_writer = self._writer.file_writer
        assert file_writer is not None  # opened in __init__
        file_writer.add_summary(exp, 0)
        file_writer.add_summary(ssi, 0)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _flatten(data: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(data, Mapping):
        for k, v in data.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif data is not None:
        out[prefix] = data


class JsonlWriter:
    """One JSON object per report, appended to ``path`` (``step`` included)."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        record = {"step": int(step), **{k: _jsonable(v) for k, v in scalars.items()}}
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class ProgressBar:
    """A tqdm bar over frames that reads truthfully from the first second.

    Until the first report it says ``compiling, 12 s`` (the first device call
    compiles the training step, which can take minutes); from then on it shows
    one rate, ``fps``, and the ``eta`` derived from it, both measured from the
    first report on (compilation left out), and the latest report's values
    (episode return, loss). tqdm's own rate and remaining time, which would
    average the compilation in, are not shown.

    Args:
        total_frames: the run's length in frames.
        desc: the bar's label.
        initial: frames already done (a resumed run).
    """

    def __init__(self, total_frames: int, desc: str = "train", initial: int = 0):
        try:
            from tqdm.auto import tqdm
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError(
                "the progress bar needs tqdm: pip install 'rtrl-agents[progress]'"
            ) from e
        self._bar = tqdm(
            total=total_frames,
            initial=initial,
            desc=desc,
            unit="frame",
            unit_scale=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
            "[{elapsed}{postfix}]",
        )
        self._total = int(total_frames)
        self._last = int(initial)
        self._first: tuple[float, int] | None = None
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            elapsed = time.monotonic() - self._start
            self._bar.set_postfix_str(f"compiling, {elapsed:.0f} s", refresh=True)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        now, step = time.monotonic(), int(step)
        post = []
        if self._first is None:
            self._stop.set()
            self._first = (now, step)
            post.append(f"compiled in {now - self._start:.0f} s")
        else:
            t0, f0 = self._first
            fps = (step - f0) / max(now - t0, 1e-9)
            post.append(f"fps={_short(fps)}")
            if fps > 0 and self._total > step:
                post.append(f"eta={_duration((self._total - step) / fps)}")
        for name, label in (
            ("episode_return", "return"),
            ("eval/success", "eval"),
            ("loss", "loss"),
            ("accuracy", "accuracy"),
            ("td_loss", "td_loss"),
        ):
            value = scalars.get(name)
            if isinstance(value, int | float) and math.isfinite(value):
                post.append(f"{label}={value:.3g}")
        # The values first, then the move (which refreshes): the line never
        # shows the previous report's values beside this report's frames.
        self._bar.set_postfix_str(", ".join(post), refresh=False)
        self._bar.update(max(step - self._last, 0))
        self._last = step

    def close(self) -> None:
        self._stop.set()
        self._bar.close()


def _short(x: float) -> str:
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def _duration(seconds: float) -> str:
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class MultiWriter:
    """Fans one report out to several writers."""

    def __init__(self, writers: Sequence[MetricWriter]):
        self.writers = tuple(writers)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        for w in self.writers:
            w.write(step, scalars)

    def write_config(self, config: Any, **kw: Any) -> None:
        """Passes the run's config to the writers that record it."""
        for w in self.writers:
            write_config = getattr(w, "write_config", None)
            if write_config is not None:
                write_config(config, **kw)

    def close(self) -> None:
        for w in self.writers:
            w.close()


def default_writers(
    log_dir: str | None,
    total_frames: int | None = None,
    progress: bool = False,
    initial_frames: int = 0,
) -> MultiWriter:
    """TensorBoard + ``metrics.jsonl`` under ``log_dir`` (if given), and a bar
    (starting at ``initial_frames`` on a resumed run)."""
    writers: list[MetricWriter] = []
    if log_dir is not None:
        writers.append(TensorBoardWriter(log_dir))
        writers.append(JsonlWriter(os.path.join(log_dir, "metrics.jsonl")))
    if progress:
        writers.append(ProgressBar(total_frames or 0, initial=initial_frames))
    return MultiWriter(writers)
