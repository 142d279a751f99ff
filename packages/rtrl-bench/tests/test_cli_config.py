"""The command line as a researcher drives it: every config field overridable and
recorded, another run's config as a start, gymnax with its parameters, `eval`
reproducing a run's score, TensorBoard's config and evaluations, a progress bar
that says when it compiles, videos."""

import glob
import json
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

import rtrl_agents as ra
from rtrl_bench import evaluate_run, load, main

FRAMES = "2e4"  # horizon: 128 frames per update -> 157 updates


@pytest.fixture(scope="module")
def overridden(tmp_path_factory):
    """Two horizon variants with a changed step size and core width."""
    logdir = tmp_path_factory.mktemp("runs")
    argv = ["run", "horizon", "--variants", "rtrl", "tbptt", "--frames", FRAMES]
    argv += ["--agent.learning-rate", "2e-3", "--core.hidden-size", "16"]
    argv += ["--eval-every", "60", "--quiet", "--logdir", str(logdir)]
    assert main(argv) == 0
    return logdir / "horizon"


def _config(run):
    return json.loads((run / "config.json").read_text())


def test_overrides_reach_every_variant_and_are_recorded(overridden):
    for variant, method in (("rtrl", "rtrl"), ("tbptt", "tbptt")):
        recorded = _config(overridden / variant / "seed0")
        agent = recorded["config"]["agent"]
        assert agent["learning_rate"] == 2e-3
        assert agent["network"]["core"]["hidden_size"] == 16
        # Each variant keeps what the flags did not name.
        assert agent["network"]["core"]["method"] == method
        argv = recorded["provenance"]["argv"]
        assert "--agent.learning-rate" in argv and "--core.hidden-size" in argv
        result = json.loads(
            (overridden / variant / "seed0" / "result.json").read_text()
        )
        assert result["config"] == recorded["config"]


def test_another_runs_config_starts_a_new_run(overridden, tmp_path):
    source = overridden / "rtrl" / "seed0" / "config.json"
    argv = ["run", "horizon", "--config", str(source), "--frames", FRAMES, "--quiet"]
    assert main([*argv, "--eval-every", "60", "--logdir", str(tmp_path)]) == 0
    # Without --variants, the file's variant; the same config, field for field.
    (run,) = (tmp_path / "horizon").iterdir()
    assert run.name == "rtrl"
    assert (
        _config(run / "seed0")["config"]
        == _config(overridden / "rtrl" / "seed0")["config"]
    )


def test_run_help_lists_every_config_field_with_its_default(capsys):
    assert main(["run", "horizon", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--frames" in out and "--resume" in out
    for flag in ("--agent.learning-rate", "--agent.network.core.hidden-size"):
        assert flag in out
    assert "(default: 0.005)" in out


def test_gymnax_memory_chain_with_its_parameters(tmp_path):
    argv = ["run", "gymnax-memorychain-l8", "--variants", "rtrl", "--frames", "5e3"]
    assert main([*argv, "--quiet", "--logdir", str(tmp_path)]) == 0
    env = _config(tmp_path / "gymnax-memorychain-l8" / "rtrl" / "seed0")["config"][
        "env"
    ]
    assert env["name"] == "gymnax/MemoryChain-bsuite"
    assert env["options"] == [["memory_length", 8]]
    argv = ["run", "gymnax", "--env.name", "gymnax/MemoryChain-bsuite"]
    argv += ["--env.option", "memory_length=3", "--variants", "feedforward"]
    assert main([*argv, "--frames", "5e3", "--quiet", "--logdir", str(tmp_path)]) == 0
    env = _config(tmp_path / "gymnax" / "feedforward" / "seed0")["config"]["env"]
    assert env["options"] == [["memory_length", 3]]


def test_eval_reproduces_the_score_run_recorded(overridden, capsys):
    run_dir = overridden / "rtrl" / "seed0"
    stored = json.loads((run_dir / "result.json").read_text())
    run = load(run_dir)
    assert run.step == stored["updates"]
    assert run.config.agent.learning_rate == 2e-3
    assert evaluate_run(run).score == stored["score"]
    assert main(["eval", str(run_dir)]) == 0
    out = capsys.readouterr().out
    shown = re.search(r"greedy success ([0-9.]+) over 256 episodes", out)
    assert shown and float(shown.group(1)) == pytest.approx(stored["score"], abs=5e-5)
    assert f"result.json's greedy success: {stored['score']}" in out
    assert main(["eval", str(run_dir), "--sample", "--episodes", "8"]) == 0
    assert "sampled success" in capsys.readouterr().out


def test_eval_video_needs_images(overridden, capsys):
    run_dir = overridden / "rtrl" / "seed0"
    assert main(["eval", str(run_dir), "--video", "x.mp4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not images: there is nothing to film" in err


def test_video_of_stacked_gray_frames(tmp_path):
    iio = pytest.importorskip("imageio.v3")
    from rtrl_bench._load import _frame_converter, _video_writer

    class Config:  # what the converter reads of a RunConfig
        class env:  # noqa: N801
            name = "atari/Breakout"

    convert = _frame_converter((4, 84, 84), Config)
    frames = [convert(np.full((4, 84, 84), i * 20, np.uint8)) for i in range(1, 9)]
    assert frames[0].shape == (252, 252, 3) and frames[0].dtype == np.uint8
    path = str(tmp_path / "episode.mp4")
    _video_writer()(path, frames, 10)
    back = iio.imread(path)
    assert back.shape[0] == 8 and back.shape[-1] == 3


def _tags(run_dir):
    from tensorboardX.proto import event_pb2

    tags, plugins = set(), set()
    for path in glob.glob(os.path.join(run_dir, "events.out.tfevents.*")):
        with open(path, "rb") as f:
            data, pos = f.read(), 0
        while pos + 12 <= len(data):
            (n,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + n])
            pos += 16 + n
            for v in event.summary.value:
                tags.add(v.tag)
                if v.metadata.plugin_data.plugin_name:
                    plugins.add(v.metadata.plugin_data.plugin_name)
    return tags, plugins


def test_tensorboard_holds_config_evaluations_and_the_result(overridden):
    tags, plugins = _tags(overridden / "rtrl" / "seed0")
    for tag in (
        "train/episode_return",
        "train/loss",
        "eval/success",
        "result/score",
        "config/text_summary",
    ):
        assert tag in tags, (tag, sorted(tags))
    assert {"hparams", "text"} <= plugins
    records = ra.read_metrics(str(overridden / "rtrl" / "seed0" / "metrics.jsonl"))
    assert records[0]["fps"] is None  # the first report includes compilation
    evaluated = [r["updates"] for r in records if "eval/success" in r]
    assert evaluated == [60.0, 120.0, 157.0]


def test_progress_bar_shows_compilation_then_one_rate(tmp_path):
    argv = ["run", "horizon", "--variants", "feedforward", "--frames", FRAMES]
    done = subprocess.run(
        [sys.executable, "-m", "rtrl_bench", *argv, "--logdir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    bar = done.stderr.replace("\r", "\n")
    assert re.search(r"compiling, \d+ s", bar) and re.search(r"compiled in \d+ s", bar)
    assert re.search(r"fps=[0-9.]+k?, eta=\d+:\d\d", bar)
    assert "frame/s" not in bar  # tqdm's own rate would average compilation in
