"""A run is a record you can trust: checked checkpoints, config.json, exactly-once
logs, locks, the NaN guard, and one-line errors at the agents' doors."""

import dataclasses
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rtrl_agents_testenvs import DelayedRecall, HostEnv

import rtrl_agents as ra


def _agent(env, hidden=8, cell="elstm", lr=6e-4, method="rtrl"):
    net = ra.NetworkConfig(
        torso=ra.TorsoConfig(hidden_sizes=(16,)),
        core=ra.CoreConfig(cell=cell, hidden_size=hidden, method=method),
    )
    cfg = ra.R2ACConfig(network=net, rollout_length=4, learning_rate=lr)
    return ra.r2ac(cfg, env.spec)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(tree, eqx.is_array))]


def _one_line(e):
    text = str(e.value)
    assert "\n" not in text, text
    return text


def _train(agent, env, run, updates, *, every=2, **kw):
    kw.setdefault("resume", True)
    return ra.train(
        agent,
        env,
        jax.random.PRNGKey(0),
        ra.LoopConfig(num_updates=updates, log_every=every, checkpoint_every=every),
        log_dir=str(run),
        checkpoint_dir=str(run / "ckpt"),
        **kw,
    )


# ------------------------------------------------------------ config as JSON


def test_every_config_round_trips_through_json():
    configs = [
        ra.R2ACConfig(decay_updates=7, reward_clip=None),
        ra.PPOConfig(),
        ra.StreamingACConfig(),
        ra.LoopConfig(checkpoint_every=20, checkpoint_seconds=1.5),
        ra.SequenceLearnerConfig(),
        ra.TDPredictorConfig(),
        ra.DistributedConfig(num_actors=3),
        ra.impala_network(),
    ]
    for cfg in configs:
        data = json.loads(json.dumps(ra.config_to_json(cfg)))
        back = ra.config_from_json(type(cfg), data)
        assert back == cfg and type(back) is type(cfg)
        assert isinstance(back, type(cfg))


def test_config_from_json_names_an_unknown_field():
    data = ra.config_to_json(ra.R2ACConfig())
    data["network"]["core"]["hiden_size"] = 3
    with pytest.raises(ValueError, match=r"config\.network\.core\.hiden_size is not"):
        ra.config_from_json(ra.R2ACConfig, data)


def test_config_diff_names_fields():
    a = ra.R2ACConfig()
    b = dataclasses.replace(
        a,
        learning_rate=1e-3,
        network=ra.impala_network(hidden_size=16),
    )
    diff = ra.config_diff(a, b)
    assert [d[0] for d in diff] == ["learning_rate", "network.core.hidden_size"]
    assert diff[1][1:] == (256, 16)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_configs_refuse_nan_and_inf(bad):
    with pytest.raises(ValueError, match="learning_rate must be a finite number"):
        ra.R2ACConfig(learning_rate=bad)
    with pytest.raises(ValueError, match="discount must be a finite number"):
        ra.PPOConfig(discount=bad)
    with pytest.raises(ValueError, match="checkpoint_seconds must be a finite"):
        ra.LoopConfig(checkpoint_seconds=bad)


# ----------------------------------------------------- restore checks it all


def _saved_runner(tmp_path, agent, env):
    runner = ra.init_runner(agent, env, jax.random.PRNGKey(0))
    ckpt = ra.Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(3, runner, config={"a": 1}, info={"frames": 12})
    return ckpt, runner


def test_restore_into_another_width_names_the_first_mismatch(tmp_path):
    env = DelayedRecall(num_envs=2, delay=2)
    ckpt, _ = _saved_runner(tmp_path, _agent(env, hidden=8), env)
    template = ra.init_runner(_agent(env, hidden=16), env, jax.random.PRNGKey(0))
    with pytest.raises(ra.CheckpointMismatchError) as e:
        ckpt.restore(template)
    assert _one_line(e).startswith(
        "checkpoint agent.params.core.F is (8, 17) float32, this config builds "
        "(16, 17) float32"
    )


def test_restore_into_another_cell_names_the_missing_parameter(tmp_path):
    env = DelayedRecall(num_envs=2, delay=2)
    ckpt, _ = _saved_runner(tmp_path, _agent(env, cell="elstm"), env)
    template = ra.init_runner(_agent(env, cell="lru"), env, jax.random.PRNGKey(0))
    with pytest.raises(ra.CheckpointMismatchError) as e:
        ckpt.restore(template)
    assert "agent.params.core." in _one_line(e) and "lacks" in str(e.value)


def test_restore_into_another_dtype_is_refused(tmp_path, x64):
    env = DelayedRecall(num_envs=2, delay=2)
    ckpt, _ = _saved_runner(tmp_path, _agent(env), env)  # float64 (x64 on)
    jax.config.update("jax_enable_x64", False)
    template = ra.init_runner(_agent(env), env, jax.random.PRNGKey(0))
    with pytest.raises(ra.CheckpointMismatchError) as e:
        ckpt.restore(template)
    assert "float64, this config builds" in _one_line(e)
    assert str(e.value).split("builds ")[1].split(" (")[0].endswith("float32")


def test_a_tbptt_checkpoint_with_unread_traces_restores(tmp_path):
    # Before rtrl-agents 0.4 a TBPTT core's carry held RTRL traces (zeros that
    # nothing reads); the carry now holds its state alone. Such a checkpoint
    # restores, its traces dropped; everything else must still match.
    env = DelayedRecall(num_envs=2, delay=2)
    agent = _agent(env, method="tbptt")
    runner = ra.init_runner(agent, env, jax.random.PRNGKey(0))
    full = jax.vmap(lambda _: runner.agent.params.core.init_carry())(jnp.arange(2))
    assert not runner.carry.has_traces and full.has_traces
    old = eqx.tree_at(lambda r: r.carry, runner, full)
    ckpt = ra.Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(3, old, config={"a": 1})
    got = ckpt.restore(runner)
    assert not got.carry.has_traces
    for a, b in zip(_leaves(got), _leaves(runner), strict=True):
        np.testing.assert_array_equal(a, b)
    # Traces the template does hold are never dropped: an RTRL carry without
    # them is still refused.
    rtrl = ra.init_runner(_agent(env), env, jax.random.PRNGKey(0))
    ckpt2 = ra.Checkpointer(str(tmp_path / "ckpt2"))
    ckpt2.save(1, runner, config={"a": 1})
    with pytest.raises(ra.CheckpointMismatchError, match="lacks"):
        ckpt2.restore(rtrl)


class _AB(eqx.Module):
    a: jax.Array
    b: jax.Array


class _BA(eqx.Module):  # the same fields, declared in the other order
    b: jax.Array
    a: jax.Array


def test_swapped_leaves_restore_by_name_not_position(tmp_path):
    ckpt = ra.Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(1, _AB(jnp.zeros(3), jnp.ones(3)))
    template = _BA(jnp.full(3, 7.0), jnp.full(3, 7.0))
    # By position, a's zeros would have landed in b.
    assert [p for p, _ in ra.array_paths(template)] == ["b", "a"]
    got = ckpt.restore(template)
    np.testing.assert_array_equal(got.a, 0.0)
    np.testing.assert_array_equal(got.b, 1.0)
    # A renamed field is named, not matched by position.
    with pytest.raises(ra.CheckpointMismatchError, match="this config builds c"):
        ckpt.restore({"a": jnp.zeros(3), "c": jnp.zeros(3)})


def test_save_refuses_non_finite_state(tmp_path):
    ckpt = ra.Checkpointer(str(tmp_path / "ckpt"))
    with pytest.raises(ra.NonFiniteError, match=r"^b holds non-finite values"):
        ckpt.save(1, _AB(jnp.zeros(3), jnp.array([1.0, jnp.inf, 0.0])))
    assert ckpt.all_steps() == []


# ------------------------------------------------- config.json and resume


def test_resume_with_another_config_is_refused_then_allowed(tmp_path):
    env = DelayedRecall(num_envs=2, delay=2)
    run = tmp_path / "run"
    _train(_agent(env, hidden=8), env, run, 4)
    before = (run / "metrics.jsonl").read_text()
    with pytest.raises(ra.ConfigMismatchError) as e:
        _train(_agent(env, hidden=16), env, run, 6)
    assert "agent.network.core.hidden_size: 8 -> 16" in _one_line(e)
    assert (run / "metrics.jsonl").read_text() == before
    # Allowed, a change of shape still cannot load the old network.
    with pytest.raises(ra.CheckpointMismatchError, match="is \\(8, 17\\) float32"):
        _train(_agent(env, hidden=16), env, run, 6, allow_config_change=True)
    # A change that keeps the shapes continues and is recorded.
    result = _train(_agent(env, lr=1e-3), env, run, 6, allow_config_change=True)
    assert [h["updates"] for h in result.history] == [2, 4, 6]
    # The new step size applies (it lives in the optimizer state, which the
    # checkpoint restored with the old one).
    lrs = [h["learning_rate"] for h in result.history]
    np.testing.assert_allclose(lrs, [6e-4, 6e-4, 1e-3], rtol=1e-6)
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["config"]["agent"]["learning_rate"] == 1e-3
    (change,) = recorded["changes"]
    assert change["updates"] == 4
    assert change["fields"] == [
        ["agent.learning_rate", 6e-4, 1e-3],
        ["loop.num_updates", 4, 6],
    ]


def test_a_folder_holding_a_run_is_not_reused_without_resume(tmp_path):
    env = DelayedRecall(num_envs=2, delay=2)
    run = tmp_path / "run"
    _train(_agent(env), env, run, 2)
    files = sorted(p.name for p in run.iterdir())
    metrics = (run / "metrics.jsonl").read_text()
    with pytest.raises(ra.RunExistsError) as e:
        _train(_agent(env), env, run, 2, resume=False)
    assert "already holds a run" in _one_line(e) and "nothing was deleted" in str(
        e.value
    )
    assert sorted(p.name for p in run.iterdir()) == files
    assert (run / "metrics.jsonl").read_text() == metrics
    # Without checkpoints a run cannot be resumed; its logs are not cut.
    logs = tmp_path / "logs"
    ra.train(
        _agent(env),
        env,
        jax.random.PRNGKey(0),
        ra.LoopConfig(num_updates=2, log_every=2),
        log_dir=str(logs),
    )
    # The same script run twice: refused (resume is never the default).
    with pytest.raises(ra.RunExistsError, match="already holds a run"):
        ra.train(
            _agent(env),
            env,
            jax.random.PRNGKey(0),
            ra.LoopConfig(num_updates=2, log_every=2),
            log_dir=str(logs),
        )
    with pytest.raises(ra.RunExistsError, match="no checkpoints"):
        ra.train(
            _agent(env),
            env,
            jax.random.PRNGKey(0),
            ra.LoopConfig(num_updates=2, log_every=2),
            log_dir=str(logs),
            resume=True,
        )
    assert len(ra.read_metrics(str(logs / "metrics.jsonl"))) == 1


def test_a_longer_run_through_the_api_is_a_recorded_config_change(tmp_path):
    env = DelayedRecall(num_envs=2, delay=2)
    run = tmp_path / "run"
    _train(_agent(env), env, run, 4)
    with pytest.raises(ra.ConfigMismatchError, match=r"loop\.num_updates: 4 -> 6"):
        _train(_agent(env), env, run, 6)
    _train(_agent(env), env, run, 6, allow_config_change=True)
    (change,) = json.loads((run / "config.json").read_text())["changes"]
    assert change["fields"] == [["loop.num_updates", 4, 6]]


def test_ctrl_c_keeps_the_last_report_and_its_records(tmp_path):
    env = DelayedRecall(num_envs=2, delay=2)

    class Interrupt:  # Ctrl-C while the report of update 6 is written
        def write(self, step, scalars):
            if scalars["updates"] == 6:
                raise KeyboardInterrupt

        def close(self):
            pass

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _train(_agent(env), env, run, 10, every=2, writers=Interrupt())
    # Checkpoints at 2 and 4 by period; Ctrl-C kept update 4, the last report
    # that completed, not 6, whose records may be half written.
    assert ra.Checkpointer(str(run / "ckpt")).all_steps() == [2, 4]
    resumed = _train(_agent(env), env, run, 10, every=2)
    assert [h["updates"] for h in resumed.history] == [2, 4, 6, 8, 10]
    assert _records(run) == _records(_whole_run(tmp_path, env, 10))


def _whole_run(tmp_path, env, updates):
    run = tmp_path / "whole"
    _train(_agent(env), env, run, updates, every=2)
    return run


def _scalars(log_dir):
    """Every (tag, step, value) in the event files of ``log_dir``."""
    import struct

    from tensorboardX.proto import event_pb2

    out = []
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + n])
            pos += 16 + n
            for v in event.summary.value:
                if not v.tag.endswith("fps"):
                    out.append((v.tag, event.step, v.simple_value))
    return sorted(out)


def _records(run):
    return [
        {k: v for k, v in r.items() if k != "fps"}
        for r in ra.read_metrics(str(run / "metrics.jsonl"))
    ]


def test_a_killed_run_resumes_to_the_records_and_state_of_an_unkilled_one(tmp_path):
    env = DelayedRecall(num_envs=4, delay=3)
    whole = _train(_agent(env), env, tmp_path / "whole", 8)
    # Killed after the report of update 8 but before checkpoint 8 was written,
    # with a torn record half-written at the end of metrics.jsonl.
    run = tmp_path / "killed"
    _train(_agent(env), env, run, 8)
    shutil.rmtree(run / "ckpt" / "8")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 40, "loss": 0.')
    resumed = _train(_agent(env), env, run, 8)
    # Update 8 ran twice (before the kill and after the resume); it is logged once.
    assert _records(run) == _records(tmp_path / "whole")
    assert _scalars(run) == _scalars(tmp_path / "whole")
    assert len(glob.glob(str(run / "events.out.tfevents.*"))) == 2
    assert [h["updates"] for h in resumed.history] == [2, 4, 6, 8]
    for a, b in zip(_leaves(whole.state), _leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(a, b)


def test_corrupt_newest_checkpoints_fall_back_with_a_warning(tmp_path):
    env = DelayedRecall(num_envs=2, delay=2)
    run = tmp_path / "run"
    whole = _train(_agent(env), env, tmp_path / "whole", 8)
    _train(_agent(env), env, run, 8)
    ckpt = run / "ckpt"
    assert sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) == [4, 6, 8]
    # 8: every data file truncated; 6: its metadata garbled.
    for path in (ckpt / "8").rglob("*"):
        if path.is_file() and path.stat().st_size > 0:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    for path in (ckpt / "6" / "meta").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00garbage{")
    with pytest.warns(ra.CheckpointWarning) as caught:
        resumed = _train(_agent(env), env, run, 8)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert messages[0].startswith(f"checkpoint 8 under {ckpt} cannot be read")
    assert messages[1].startswith(f"checkpoint 6 under {ckpt} cannot be read")
    assert all("\n" not in m and len(m) < 400 for m in messages)
    assert (ckpt / "8.unreadable").is_dir() and (ckpt / "6.unreadable").is_dir()
    # Resumed from 4: the same state and records as a run never damaged.
    for a, b in zip(_leaves(whole.state), _leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert _records(run) == _records(tmp_path / "whole")
    assert ra.Checkpointer(str(ckpt)).all_steps() == [4, 6, 8]


def test_arrays_that_decode_but_do_not_match_their_checksum_fall_back(tmp_path):
    # Storage without checksums of its own can hand back garbled bytes as
    # numbers; the SHA-256 saved beside each array catches them.
    ckpt = ra.Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(1, _AB(jnp.zeros(3), jnp.ones(3)))
    ckpt.save(2, _AB(jnp.full(3, 2.0), jnp.ones(3)))
    meta = tmp_path / "ckpt" / "2" / "meta" / "metadata"
    data = json.loads(meta.read_text())
    data["leaves"]["a"]["sha256"] = "0" * 64  # as if a's bytes had changed
    meta.write_text(json.dumps(data))
    with pytest.warns(ra.CheckpointWarning, match="a does not match its checksum"):
        found = ckpt.restore_latest(_AB(jnp.zeros(3), jnp.zeros(3)))
    assert found.step == 1
    np.testing.assert_array_equal(found.state.a, 0.0)


def test_no_readable_checkpoint_is_an_error_not_a_silent_restart(tmp_path):
    env = DelayedRecall(num_envs=2, delay=2)
    run = tmp_path / "run"
    _train(_agent(env), env, run, 2, every=2)
    for path in (run / "ckpt" / "2").rglob("*"):
        if path.is_file():
            path.write_bytes(b"")
    with (
        pytest.warns(ra.CheckpointWarning),
        pytest.raises(ra.CheckpointNotReadableError) as e,
    ):
        _train(_agent(env), env, run, 2)
    assert "none of the checkpoints" in _one_line(e)


# -------------------------------------------------------------- the NaN guard


def test_guard_keeps_the_old_state_when_the_new_parameters_overflow():
    env = DelayedRecall(num_envs=2, delay=2)
    agent = _agent(env)
    state = agent.init(jax.random.PRNGKey(0))
    inf_params = jax.tree.map(
        lambda x: x * jnp.inf if eqx.is_inexact_array(x) else x, state.params
    )
    new = dataclasses.replace(state, params=inf_params)
    out, flags = ra.guard_nonfinite(new, state, jnp.float32(1.0), jnp.float32(1.0))
    assert int(flags["nonfinite_state"]) == 1 and int(flags["nonfinite_loss"]) == 0
    for a, b in zip(_leaves(out.params), _leaves(state.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(out.update_count) == 1


def test_nan_guard_with_a_checkpoint_after_every_update(tmp_path):
    env = DelayedRecall(num_envs=2, delay=2)
    run = tmp_path / "run"
    _train(_agent(env), env, run, 3, every=1)
    # A step size that overflows the parameters while loss and gradient stay
    # finite: the old guard applied it and checkpointed +-Inf.
    with pytest.raises(ra.NonFiniteError) as e:
        _train(_agent(env, lr=3e38), env, run, 6, every=1, allow_config_change=True)
    assert _one_line(e).startswith(
        "non-finite parameters or optimizer state at update 4"
    )
    ckpt = ra.Checkpointer(str(run / "ckpt"))
    assert ckpt.all_steps() == [1, 2, 3]
    template = ra.init_runner(_agent(env), env, jax.random.PRNGKey(0))
    for step in ckpt.all_steps():
        state = ckpt.restore(template, step)
        assert all(
            np.all(np.isfinite(x)) for x in _leaves(state) if x.dtype.kind == "f"
        )


# ------------------------------------------------------------------ the lock


def test_a_second_process_on_a_run_folder_is_refused_at_once(tmp_path):
    env = DelayedRecall(num_envs=2, delay=2)
    run = tmp_path / "run"
    _train(_agent(env), env, run, 2)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time, rtrl_agents as ra
                with ra.RunLock({str(run)!r}):
                    print("locked", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ra.RunInUseError) as e:
            _train(_agent(env), env, run, 4)
        assert _one_line(e).startswith(f"{run} is in use by another process (pid ")
        after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        assert {p: b for p, b in after.items() if p.name != ".lock"} == {
            p: b for p, b in before.items() if p.name != ".lock"
        }
    finally:
        holder.kill()
        holder.wait()
    # The lock dies with its holder: the run resumes.
    resumed = _train(_agent(env), env, run, 4, allow_config_change=True)
    assert [h["updates"] for h in resumed.history] == [2, 4]


# ------------------------------------------------------------ agents' doors


def test_an_agent_run_on_another_environment_is_named_at_once():
    agent = _agent(DelayedRecall(num_envs=2, delay=2, num_noise=2))
    wider = DelayedRecall(num_envs=2, delay=2, num_noise=4)
    with pytest.raises(ValueError) as e:
        ra.init_runner(agent, wider, jax.random.PRNGKey(0))
    assert _one_line(e) == (
        "the agent was built for observations of shape (5,), but the environment "
        "has (7,): build it from this environment's spec."
    )
    with pytest.raises(ValueError, match="observations of shape"):
        ra.train(agent, HostEnv(wider), jax.random.PRNGKey(0), ra.LoopConfig(2, 2))
    # Called directly with the wrong observations, the network says so.
    state = agent.init(jax.random.PRNGKey(0))
    carry = state.params.initial_carry()
    with pytest.raises(ValueError, match=r"built for observations of shape \(5,\)"):
        state.params.unroll(carry, jnp.zeros((3, 7)), jnp.zeros(3), jnp.zeros(3, bool))


def test_short_orbax_save_waits_do_not_reach_the_terminal(caplog):
    # Every save is waited for, so orbax's advice to checkpoint less often after
    # a wait of a second or two (a busy machine) would only break the bar; a
    # wait of a minute or more still shows.
    import logging

    from absl import logging as absl_logging

    import rtrl_agents  # noqa: F401  (installs the filter)

    msg = "Waiting for previous save to complete took %f seconds. If this number"
    with caplog.at_level(logging.WARNING, logger="absl"):
        absl_logging.warning(msg, 1.09)
        absl_logging.warning(msg, 75.0)
        absl_logging.warning("another orbax warning")
        # A damaged checkpoint's metadata: restore's own warning says it.
        absl_logging.error("Failed to json parse Metadata file: /x/ckpt/3/m, ...")
    shown = [r.getMessage() for r in caplog.records]
    assert not any("Metadata" in m for m in shown)
    assert not any("took 1.09" in m for m in shown)
    assert any("took 75.0" in m for m in shown)
    assert "another orbax warning" in shown


def test_config_diff_reads_a_field_added_later_as_its_default():
    # A run recorded before PPOConfig.stale_traces existed resumes with the
    # default; another value, or an unknown field, still differs.
    new = ra.PPOConfig()
    old = ra.config_to_json(new)
    del old["stale_traces"]
    assert ra.config_diff(old, new) == []
    assert ra.config_diff(new, old) == []
    other = dataclasses.replace(new, stale_traces="store")
    assert [d[0] for d in ra.config_diff(old, other)] == ["stale_traces"]
    old["no_such_field"] = 3
    assert [d[0] for d in ra.config_diff(old, new)] == ["no_such_field"]
