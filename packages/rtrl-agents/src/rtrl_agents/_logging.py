"""Metric writers: TensorBoard event files, JSON lines, a progress bar.

Backends are imported lazily inside the writer that needs them, with an
ImportError naming the extra to install. No TensorFlow: event files are written
with tensorboardX.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class MetricWriter(Protocol):
    """Receives one dict of scalars per report (every ``K`` updates)."""

    def write(self, step: int, scalars: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


class TensorBoardWriter:
    """Scalars to a TensorBoard event file under ``log_dir`` (tensorboardX).

    Tags are ``<prefix>/<name>``; the step is the number of environment frames.
    Every writer opens its own event file (a resumed run adds one), named apart
    by ``filename_suffix`` (default: pid and a random tag), since tensorboardX
    names files by the second they were opened in and truncates on open.
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

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        for name, value in scalars.items():
            if isinstance(value, int | float) and math.isfinite(value):
                self._writer.add_scalar(f"{self.prefix}/{name}", value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


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
    """A tqdm bar over frames showing fps and the recent episode return."""

    def __init__(self, total_frames: int, desc: str = "train"):
        try:
            from tqdm.auto import tqdm
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError(
                "the progress bar needs tqdm: pip install 'rtrl-agents[progress]'"
            ) from e
        self._bar = tqdm(total=total_frames, desc=desc, unit="frame", unit_scale=True)
        self._last = 0

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        self._bar.update(max(int(step) - self._last, 0))
        self._last = int(step)
        post = {"fps": f"{scalars.get('fps', float('nan')):.0f}"}
        if "episode_return" in scalars:
            post["return"] = f"{scalars['episode_return']:.3g}"
        self._bar.set_postfix(post, refresh=False)

    def close(self) -> None:
        self._bar.close()


class MultiWriter:
    """Fans one report out to several writers."""

    def __init__(self, writers: Sequence[MetricWriter]):
        self.writers = tuple(writers)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        for w in self.writers:
            w.write(step, scalars)

    def close(self) -> None:
        for w in self.writers:
            w.close()


def default_writers(
    log_dir: str | None, total_frames: int | None = None, progress: bool = False
) -> MultiWriter:
    """TensorBoard + ``metrics.jsonl`` under ``log_dir`` (if given), and a bar."""
    writers: list[MetricWriter] = []
    if log_dir is not None:
        writers.append(TensorBoardWriter(log_dir))
        writers.append(JsonlWriter(os.path.join(log_dir, "metrics.jsonl")))
    if progress:
        writers.append(ProgressBar(total_frames or 0))
    return MultiWriter(writers)
