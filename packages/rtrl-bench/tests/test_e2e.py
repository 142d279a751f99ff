"""The end-to-end comparison: PureJaxRL's PPO-RNN re-written, timed beside ours."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrl_agents as ra
import rtrl_cells as rc
from rtrl_bench import main
from rtrl_bench._e2e import (
    ANCHOR,
    E2ESettings,
    PureJaxRLNet,
    _gae,
    _Transition,
    make_purejaxrl_train,
    run_e2e,
)

pytest.importorskip("gymnax")


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)


TINY = E2ESettings(num_envs=4, num_steps=6, updates=2, runs=2, width=1 / 16)


def test_purejaxrl_gae_equals_ours_with_episode_cuts(x64):
    # PureJaxRL stores the done flag before each observation and cuts with
    # 1 - next_done; that is GAE with discount_t = gamma (1 - done_{t+1}).
    T, gamma, lam = 9, 0.97, 0.9
    k = jax.random.split(jax.random.key(3), 4)
    r = jax.random.normal(k[0], (T,), jnp.float64)
    v = jax.random.normal(k[1], (T,), jnp.float64)
    done = jax.random.bernoulli(k[2], 0.3, (T,))
    last_val = jnp.asarray(0.7, jnp.float64)
    last_done = jnp.asarray(True)
    zeros = jnp.zeros((T,))
    traj = _Transition(done, zeros, v, r, zeros, zeros)
    adv, targets = _gae(traj, last_val, last_done, gamma, lam)
    next_done = jnp.concatenate([done[1:], last_done[None]])
    ours = ra.gae(r, gamma * (1.0 - next_done), jnp.append(v, last_val), lam)
    np.testing.assert_allclose(adv, ours, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(targets, ours + v, rtol=1e-12, atol=1e-12)


def test_purejaxrl_net_resets_its_gru_where_done():
    net = PureJaxRLNet(3, 2, 8, 5, jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (4, 2, 3))
    done = jnp.array([[False, False], [True, False], [False, False], [False, False]])
    h0 = jax.random.normal(jax.random.key(2), (2, 5))
    h_T, logits, values = net(h0, obs, done)
    assert logits.shape == (4, 2, 2) and values.shape == (4, 2)
    # Stream 0 restarts at step 1: its last state does not depend on h0 or step 0.
    h_T2, _, _ = net(h0 * 3.0, obs.at[0].set(9.0), done)
    np.testing.assert_allclose(h_T2[0], h_T[0], rtol=1e-6)
    assert not np.allclose(h_T2[1], h_T[1])


def test_purejaxrl_train_runs_its_updates_and_counts_the_gru():
    train, recurrent = make_purejaxrl_train(TINY)
    h, d = TINY.size(128), TINY.size(128)
    assert recurrent == 3 * h * d + 3 * h * h + 3 * h + h  # eqx.nn.GRUCell
    runner, rewards = jax.jit(train)(jax.random.key(0))
    assert rewards.shape == (TINY.updates,)
    # The updates moved every layer from its initialisation (the loop learns).
    k_net = jax.random.split(jax.random.key(0), 3)[1]
    init = PureJaxRLNet(3, 2, d, h, k_net)  # MemoryChain: 3 inputs, 2 actions
    leaves0 = jax.tree.leaves(eqx.filter(init, eqx.is_array))
    leaves = jax.tree.leaves(runner[0])
    assert [x.shape for x in leaves] == [x.shape for x in leaves0]
    moved = [not np.allclose(a, b) for a, b in zip(leaves, leaves0, strict=True)]
    assert sum(moved) >= len(moved) - 2  # the value/logit output biases may stay
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(runner[0]))


def test_run_e2e_interleaves_and_reports_ratios_to_purejaxrl():
    rows = run_e2e(TINY, (ANCHOR, "r2ac-elstm", "r2ac-elstm-chunked"))
    by = {r.system: r for r in rows}
    assert by[ANCHOR].ratio == 1.0
    for r in rows:
        assert r.steps_per_s > 0 and r.runs == TINY.runs and r.temp_mb >= 0
        assert abs(r.ratio - r.steps_per_s / by[ANCHOR].steps_per_s) < 1e-12
    cell = rc.ELSTM(
        input_size=TINY.size(128), hidden_size=TINY.size(176), key=jax.random.key(0)
    )
    params = jax.tree.leaves(eqx.filter(cell, eqx.is_array))
    assert by["r2ac-elstm"].recurrent_params == sum(x.size for x in params)


def test_e2e_cli_rejects_bad_input_in_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["e2e", "--systems", "purejaxrl", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
    with pytest.raises(ValueError, match="multiple of 4"):
        E2ESettings(num_envs=6)
    with pytest.raises(ValueError, match="unknown e2e system"):
        run_e2e(TINY, ("ppo-lstm",))


def test_e2e_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "e2e.json"
    args = ["e2e", "--systems", ANCHOR, "--num-envs", "4", "--num-steps", "4"]
    args += ["--updates", "1", "--runs", "1", "--width", "0.05", "--json", str(out)]
    assert main(args) == 0
    data = json.loads(out.read_text())
    assert data["settings"]["num_envs"] == 4
    assert [r["system"] for r in data["e2e"]] == [ANCHOR]
    assert "x PureJaxRL" in capsys.readouterr().out
