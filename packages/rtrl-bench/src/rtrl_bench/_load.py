"""Loading a trained run from its folder alone, and playing it (``rtrl-bench eval``).

A run folder holds everything needed: ``config.json`` says what was trained and
on which environment, ``ckpt/`` holds the state. :func:`load` rebuilds the agent
from the config, restores the newest readable checkpoint (checked against the
config, as on resume) and makes the held-out evaluation environment;
:func:`evaluate_run` plays it, greedy or sampled, and can film one stream.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ._experiments import SequenceConfig
from ._run import (
    CHECKPOINT_DIR,
    RunConfig,
    _make_agent,
    eval_seed,
    evaluate,
    make_env,
    score_returns,
)


@dataclasses.dataclass
class LoadedRun:
    """A trained run, ready to act.

    Attributes:
        path: the run folder.
        config: its :class:`RunConfig` (from ``config.json``).
        agent: the agent, rebuilt from the config.
        state: its ``AgentState`` from the checkpoint.
        step: the checkpoint's update.
        env: the held-out evaluation environments (the same as ``run`` scores
            on: seed ``seed + 1000003``, the evaluation options).
    """

    path: Path
    config: RunConfig
    agent: Any
    state: Any
    step: int
    env: Any


def load(run_dir: str | Path, *, step: int | None = None) -> LoadedRun:
    """Loads the run in ``run_dir`` (a ``LOGDIR/NAME/VARIANT/seed<K>`` folder).

    Args:
        run_dir: the run folder.
        step: the checkpoint to load (default: the newest readable one).

    Returns:
        The agent, its state, the config and the evaluation environment.

    Raises:
        FileNotFoundError: the folder, its ``config.json`` or its checkpoints
            are missing.
        ValueError: the folder holds a sequence learner (not an agent that
            acts), or its config cannot be read.
        rtrl_agents.CheckpointMismatchError: the checkpoint does not fit the
            recorded config.
    """
    import jax

    import rtrl_agents as ra

    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder: pass a run folder")
    recorded = ra.read_run_config(str(path))
    if recorded is None:
        raise FileNotFoundError(
            f"{path} holds no config.json: pass a run folder of `rtrl-bench run` "
            "(LOGDIR/NAME/VARIANT/seed<K>)"
        )
    config = ra.config_from_json(RunConfig, recorded["config"], where="config.json")
    if isinstance(config.agent, SequenceConfig):
        raise ValueError(
            f"{path} holds a {config.agent.task} learner, which does not act in an "
            "environment: its result.json has its score"
        )
    if not (path / CHECKPOINT_DIR).is_dir():
        raise FileNotFoundError(f"{path} holds no checkpoints ({CHECKPOINT_DIR}/)")
    train_env = make_env(config.env, config.seed)
    agent = _make_agent(config.agent, train_env.spec)
    template = ra.initial_run_state(agent, train_env, jax.random.PRNGKey(config.seed))
    ckpt = ra.Checkpointer(str(path / CHECKPOINT_DIR))
    try:
        if step is None:
            found = ckpt.restore_latest(template, config=recorded["config"])
            if found is None:
                raise FileNotFoundError(f"{path} holds no checkpoint yet")
            state, step = found.state, found.step
        else:
            if step not in ckpt.all_steps():
                raise FileNotFoundError(
                    f"{path} has no checkpoint {step}; it has "
                    f"{', '.join(map(str, ckpt.all_steps())) or 'none'}"
                )
            state = ckpt.restore(template, step, config=recorded["config"])
    finally:
        ckpt.close()
    env = make_env(config.env, eval_seed(config.seed), evaluation=True)
    return LoadedRun(path, config, agent, state.agent, int(step), env)


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """What :func:`evaluate_run` measured.

    Attributes:
        returns: each episode's return, in the order they ended.
        metric: what ``score`` measures (the experiment's metric).
        score: success rate (returns > 0) or mean return.
        greedy: whether actions were the policy's mode.
        video: the written video, if any.
    """

    returns: tuple[float, ...]
    metric: str
    score: float
    greedy: bool
    video: str | None


def evaluate_run(
    run: LoadedRun,
    *,
    episodes: int | None = None,
    greedy: bool = True,
    seed: int | None = None,
    video: str | Path | None = None,
    fps: int = 15,
) -> EvalResult:
    """Plays a loaded run on its held-out environment.

    With the defaults (greedy, the run's number of evaluation episodes and its
    evaluation key) this is exactly the evaluation ``run`` scored, so it
    reproduces ``result.json``'s score.

    Args:
        run: from :func:`load`.
        episodes: episodes to play (default: the run's ``eval_episodes``).
        greedy: act with the policy's mode; else sample.
        seed: the evaluation key's seed (default: the one ``run`` used).
        video: write stream 0's frames to this file (``.mp4`` or ``.gif``;
            needs ``pip install 'rtrl-bench[video]'``); pixel observations only.
        fps: the video's frame rate.

    Raises:
        ValueError: ``video`` was asked for an environment whose observations
            are not images.
        ImportError: the video writer is not installed (names the extra).
    """
    import jax

    episodes = run.config.eval_episodes if episodes is None else episodes
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    key = jax.random.PRNGKey(run.config.seed + 1 if seed is None else seed)
    frames: list[np.ndarray] = []
    on_step = None
    if video is not None:
        to_image = _frame_converter(run.env.spec.observation_shape, run.config)
        writer = _video_writer()

        def record_frame(ts):
            frames.append(to_image(np.asarray(ts.observation)[0]))

        on_step = record_frame

    returns = evaluate(
        run.agent, run.state, run.env, key, episodes, greedy=greedy, on_step=on_step
    )
    if video is not None:
        writer(str(video), frames, fps)
    return EvalResult(
        returns=tuple(returns),
        metric=run.config.metric,
        score=score_returns(run.config.metric, returns),
        greedy=greedy,
        video=None if video is None else str(video),
    )


def _frame_converter(shape: tuple[int, ...], config: RunConfig):
    """Observation of one stream -> an RGB uint8 image, upscaled to ~256 px.

    Layouts: channels first when the first axis is small and the last is not
    (envpool's Atari ``(4, 84, 84)`` frame stack, ProcGen ``(3, 64, 64)``), else
    channels last (DMLab, MinAtar). Three channels are RGB; otherwise the newest
    of stacked frames (channels first) or the brightest channel is shown.
    """
    if len(shape) != 3:
        raise ValueError(
            f"{config.env.name} gives observations of shape {shape}, not images: "
            "there is nothing to film (--video needs a pixel environment)"
        )
    channels_first = shape[0] <= 4 < shape[-1]

    def convert(obs: np.ndarray) -> np.ndarray:
        img = np.asarray(obs, np.float64)
        if channels_first:
            img = np.moveaxis(img, 0, -1)
            if img.shape[-1] != 3:
                img = img[..., -1:]  # the newest of stacked frames
        elif img.shape[-1] != 3:
            img = img.max(axis=-1, keepdims=True)
        if img.max() <= 1.0:
            img = img * 255.0
        img = np.clip(img, 0, 255).astype(np.uint8)
        scale = max(1, 256 // max(img.shape[:2]))
        img = img.repeat(scale, 0).repeat(scale, 1)
        return np.repeat(img, 3, -1) if img.shape[-1] == 1 else img

    return convert


def _video_writer():
    try:
        import imageio.v3 as iio
    except ImportError as e:
        raise ImportError("videos need imageio: pip install 'rtrl-bench[video]'") from e

    def write(path: str, frames: list[np.ndarray], fps: int) -> None:
        if path.endswith(".gif"):
            iio.imwrite(path, np.stack(frames), duration=1000 / fps, loop=0)
            return
        try:
            iio.imwrite(path, np.stack(frames), fps=fps, codec="libx264")
        except Exception as e:  # imageio names its missing plugin its own way
            raise ImportError(
                f"writing {path} needs ffmpeg: pip install 'rtrl-bench[video]' "
                f"({type(e).__name__})"
            ) from None

    return write
