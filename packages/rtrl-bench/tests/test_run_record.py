"""`rtrl-bench run` keeps a run folder trustworthy: a kill at any report (or in
the middle of a checkpoint write) resumes to the records, parameters and result
of a run never killed; nothing is deleted or mixed up without being asked; every
user error ends in one line."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import equinox as eqx
import jax
import numpy as np
import pytest

import rtrl_agents as ra
from rtrl_bench import CheckpointPolicy, RunConfig, get_experiment, main

# Horizon, RTRL arm: 32 streams x M = 4 -> 128 frames per update; 300 updates in
# 100 reports of 3; a checkpoint every 3 reports.
FRAMES = 128 * 300
RUN = ["run", "horizon", "--variants", "rtrl", "--frames", str(FRAMES), "--quiet"]
RUN += ["--checkpoint-every", "9"]
CLI = [
    sys.executable,
    "-c",
    "import sys; from rtrl_bench import main; sys.exit(main())",
]


def _cli(*argv, **kw):
    return subprocess.run([*CLI, *argv], capture_output=True, text=True, **kw)


def _records(run):
    return [
        {k: v for k, v in r.items() if k != "fps"}
        for r in ra.read_metrics(str(run / "metrics.jsonl"))
    ]


def _result(run):
    data = json.loads((run / "result.json").read_text())
    for k in ("seconds", "path", "provenance"):
        data.pop(k)
    return data


def _final_arrays(run):
    meta = ra.Checkpointer(str(run / "ckpt"))
    step = meta.latest_step()
    exp = get_experiment("horizon")
    config = ra.config_from_json(
        RunConfig, json.loads((run / "config.json").read_text())["config"]
    )
    import rtrl_envs

    env = rtrl_envs.make(exp.env.name, num_envs=32, seed=0, **dict(exp.env.options))
    agent = ra.r2ac(config.agent, env.spec)
    template = ra.init_runner(agent, env, jax.random.PRNGKey(0))
    state = meta.restore(template, step)
    return step, [
        np.asarray(x) for x in jax.tree.leaves(eqx.filter(state, eqx.is_array))
    ]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The run never killed."""
    logdir = tmp_path_factory.mktemp("whole")
    done = _cli(*RUN, "--logdir", str(logdir))
    assert done.returncode == 0, done.stderr
    return logdir / "horizon" / "rtrl" / "seed0"


def _same_run(run, whole):
    assert _records(run) == _records(whole)
    assert _result(run) == _result(whole)
    (step_a, a), (step_b, b) = _final_arrays(run), _final_arrays(whole)
    assert step_a == step_b == 300
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def _kill_at_report(args, metrics, report):
    proc = subprocess.Popen([*CLI, *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(ra.read_metrics(str(metrics))) >= report:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()


def test_sigkill_at_a_random_report_then_resume_equals_the_unkilled_run(
    whole, tmp_path
):
    report = random.Random(os.getpid()).randint(5, 95)
    run = tmp_path / "horizon" / "rtrl" / "seed0"
    _kill_at_report([*RUN, "--logdir", str(tmp_path)], run / "metrics.jsonl", report)
    assert not (run / "result.json").exists()
    # Resumed with the progress output on, as a user types it (that path once
    # failed on the killed run's missing result.json).
    loud = [a for a in RUN if a != "--quiet"]
    done = _cli(*loud, "--logdir", str(tmp_path), "--resume")
    assert done.returncode == 0, done.stderr
    assert "resuming from checkpoint" in done.stdout + done.stderr
    _same_run(run, whole)


def test_sigkill_during_a_checkpoint_write_then_resume(whole, tmp_path):
    # The 5th save is made slow (a 200 MB array rides along) and the process
    # is killed as soon as its half-written folder appears.
    killer = textwrap.dedent(
        """
        import os, signal, sys, threading, time
        import numpy as np
        from rtrl_agents import _checkpoint
        from rtrl_bench import main

        saves = [0]
        original = _checkpoint.Checkpointer.save

        def watch(directory):
            while True:
                if any(".orbax-checkpoint-tmp" in n for n in os.listdir(directory)):
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(0.001)

        def save(self, step, tree, **kw):
            saves[0] += 1
            if saves[0] == 5:
                tree = (tree, np.zeros(50_000_000, np.float32))
                threading.Thread(target=watch, args=(self.directory,)).start()
            return original(self, step, tree, **kw)

        _checkpoint.Checkpointer.save = save
        sys.exit(main())
        """
    )
    args = [*RUN, "--logdir", str(tmp_path)]
    proc = subprocess.run([sys.executable, "-c", killer, *args], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    ckpt = tmp_path / "horizon" / "rtrl" / "seed0" / "ckpt"
    assert any(".orbax-checkpoint-tmp" in p.name for p in ckpt.iterdir())
    done = _cli(*args, "--resume")
    assert done.returncode == 0, done.stderr
    assert not any(".orbax-checkpoint-tmp" in p.name for p in ckpt.iterdir())
    _same_run(ckpt.parent, whole)


def test_resume_under_another_budget_is_refused_then_allowed(whole, tmp_path, capsys):
    logdir = tmp_path / "runs"
    shutil.copytree(whole, logdir / "horizon" / "rtrl" / "seed0")
    run = logdir / "horizon" / "rtrl" / "seed0"
    before = (run / "result.json").read_text()
    longer = [a if a != str(FRAMES) else str(2 * FRAMES) for a in RUN]
    assert main([*longer, "--logdir", str(logdir), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "was made with another config (agent.decay_updates: 300 -> 600" in err
    assert "frames: 38400 -> 76800" in err and "--allow-config-change" in err
    assert (run / "result.json").read_text() == before
    # A shorter budget than the run has trained is refused even when allowed.
    shorter = [a if a != str(FRAMES) else str(FRAMES // 2) for a in RUN]
    argv = [*shorter, "--logdir", str(logdir), "--resume", "--allow-config-change"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "has trained 300 updates (38400 frames), more than --frames 19200" in err
    assert "ask for --frames 38400 or more (nothing was changed)" in err
    assert (run / "result.json").read_text() == before  # not set aside
    # Allowed: the run continues from its last checkpoint to the new budget.
    argv = [*longer, "--logdir", str(logdir), "--resume", "--allow-config-change"]
    assert main(argv) == 0
    records = ra.read_metrics(str(run / "metrics.jsonl"))
    # The first 300 updates' records stay as they were; the new budget reports
    # every 6 updates (its log_every, also listed in the change).
    assert [r["updates"] for r in records] == [
        *range(3, 301, 3),
        *range(306, 601, 6),
    ]
    assert _records(run)[:100] == _records(whole)
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["config"]["frames"] == 2 * FRAMES
    (change,) = recorded["changes"]
    assert change["updates"] == 300
    assert ["frames", FRAMES, 2 * FRAMES] in change["fields"]
    assert json.loads((run / "result.superseded-1.json").read_text()) == json.loads(
        before
    )
    assert json.loads((run / "result.json").read_text())["frames"] == 2 * FRAMES


def test_rerun_without_resume_deletes_nothing(whole, tmp_path, capsys):
    logdir = tmp_path / "runs"
    shutil.copytree(whole, logdir / "horizon" / "rtrl" / "seed0")
    files = {p: p.read_bytes() for p in logdir.rglob("*") if p.is_file()}
    assert main([*RUN, "--logdir", str(logdir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "already holds a run: pass --resume to continue it" in err
    assert "nothing was deleted" in err
    assert {p: p.read_bytes() for p in logdir.rglob("*") if p.is_file()} == files


def test_a_second_process_is_refused_and_the_first_finishes_intact(tmp_path):
    args = [*RUN, "--logdir", str(tmp_path)]
    first = subprocess.Popen([*CLI, *args], stderr=subprocess.PIPE, text=True)
    run = tmp_path / "horizon" / "rtrl" / "seed0"
    deadline = time.monotonic() + 300
    while not (run / "config.json").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    second = _cli(*args, "--resume")
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    assert "is in use by another process (pid " in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert len(ra.read_metrics(str(run / "metrics.jsonl"))) == 100
    assert json.loads((run / "result.json").read_text())["updates"] == 300


@pytest.mark.parametrize("name", ["copy", "trace-conditioning"])
def test_sequence_experiments_checkpoint_and_resume(name, tmp_path):
    exp = get_experiment(name)
    variant = exp.variants[0].name
    frames = {"copy": 32 * 2 * 5 * 40, "trace-conditioning": 8 * 40}[name]
    argv = ["run", name, "--variants", variant, "--frames", str(frames), "--quiet"]
    argv += ["--checkpoint-every", "4"]
    assert main([*argv, "--logdir", str(tmp_path / "whole")]) == 0
    whole = tmp_path / "whole" / name / variant / "seed0"
    steps = ra.Checkpointer(str(whole / "ckpt")).all_steps()
    assert (
        len(steps) == 3
        and steps[-1]
        == json.loads((whole / "config.json").read_text())["config"]["num_updates"]
    )
    # Killed after its last reports but before their checkpoint and the result.
    run = tmp_path / "killed" / name / variant / "seed0"
    shutil.copytree(whole, run)
    (run / "result.json").unlink()
    shutil.rmtree(run / "ckpt" / str(steps[-1]))
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 1')
    assert main([*argv, "--logdir", str(tmp_path / "killed"), "--resume"]) == 0
    assert _records(run) == _records(whole)
    assert _result(run) == _result(whole)


# --------------------------------------------------------- one line per error


def _bad_inputs(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    bad_json = tmp_path / "bad" / "horizon" / "rtrl" / "seed0"
    bad_json.mkdir(parents=True)
    (bad_json / "result.json").write_text('{"experiment": "horizon",\n "score": }')
    no_keys = tmp_path / "nokeys" / "x"
    no_keys.mkdir(parents=True)
    (no_keys / "result.json").write_text('{"experiment": "horizon"}')
    logdir = ["--logdir", str(tmp_path / "runs")]
    return [
        (["run", "horizon", "--variants", "nope", *logdir], "has no variant 'nope'"),
        (["run", "horizon", "--logdir", str(a_file)], "is a file, not a folder"),
        (
            ["run", "horizon", "--logdir", str(a_file / "sub")],
            "cannot be written (Not a directory)",
        ),
        (["run", "horizon", "--frames", "1e6x", *logdir], "is not a whole number"),
        (["run", "horizon", "--frames", "0", *logdir], "must be a whole number >= 1"),
        (["run", "horizon", "--keep-checkpoints", "1", *logdir], "keep at least 2"),
        (["run", "horizon", "--variants", "rtrl", "--eval-every", "0"], ">= 1"),
        (["run", "copy", "--eval-every", "10", *logdir], "drop --eval-every"),
        (["run", "horizn", *logdir], "Did you mean horizon"),
        (["report", str(tmp_path / "bad")], "result.json is not valid JSON at line 2"),
        (["report", str(tmp_path / "nokeys")], "is not a result of `rtrl-bench run`"),
        (["report", str(tmp_path / "nowhere")], "is not a folder"),
        (["gradcheck", "--length", "0"], "'0' must be a whole number >= 1"),
        (["gradcheck", "--segments", "x"], "'x' is not a whole number"),
        (["run", "horizon", "--logdir", ""], "--logdir is empty"),
        (["run", "horizon", "--agent.learnin-rate", "1", *logdir], "did you mean"),
        (["run", "horizon", "--agent.learning-rate", "-1", *logdir], "positive"),
        (["run", "horizon", "--core.hidden-size", "x", *logdir], "hidden-size"),
        (["run", "horizon", "--config", str(a_file), *logdir], "is not JSON"),
        (["eval", str(tmp_path / "nowhere")], "is not a folder"),
        (["eval", str(tmp_path)], "holds no config.json"),
        (["envs", "atari/Brekout"], "unknown environment 'atari/Brekout'"),
        (["speed", "--config", "1,2,3"], "must be four whole numbers >= 1: N,D,T,B"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (
            [
                "scale",
                "--experiment",
                "popgym-repeatfirstmedium",
                "--variant",
                "rtu-rtrl",
            ],
            "scale measures R2AC's throughput",
        ),
    ]


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:  # argparse's errors
        return e.code


def test_every_bad_input_ends_in_one_line(tmp_path, capsys):
    for argv, message in _bad_inputs(tmp_path):
        code = _exit_code(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert message in err, (argv, err)
    assert not (tmp_path / "runs").exists()  # nothing made on the way


def test_missing_backends_are_named_before_any_folder_is_made(
    tmp_path, capsys, monkeypatch
):
    import importlib.util

    import rtrl_envs

    def no_envpool(name):
        raise rtrl_envs.BackendNotInstalledError(
            "envpool is not installed: pip install 'rtrl-envs[envpool]'"
        )

    monkeypatch.setattr(rtrl_envs, "check_backend", no_envpool)
    assert main(["run", "atari-breakout", "--logdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "rtrl-bench run: error: experiment 'atari-breakout' needs a backend that is "
        "missing: envpool is not installed: pip install 'rtrl-envs[envpool]'\n"
    )
    monkeypatch.undo()
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "ray" else find_spec(name, *a),
    )
    assert main(["run", "horizon", "--ray", "local", "--logdir", str(tmp_path)]) == 2
    assert "--ray needs Ray, which is not installed here" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_debug_shows_the_traceback(tmp_path):
    done = _cli("run", "horizon", "--variants", "nope", "--debug")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "UnknownVariantError" in done.stderr


def test_checkpoint_policy_defaults_bound_the_loss():
    policy = CheckpointPolicy()
    loop = policy.loop(16_000, 160)
    # At most a tenth of the run or five minutes of work is lost to a kill, and
    # three checkpoints are kept.
    assert loop.checkpoint_every == 1600 and loop.checkpoint_seconds == 300
    assert loop.keep_checkpoints == 3
