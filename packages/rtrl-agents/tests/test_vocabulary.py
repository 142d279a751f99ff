"""Cells and gradient methods are rtrl-cells' names: configs hold them, validated
against its registries, and a cell object never contradicts the config."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest
from rtrl_agents_testenvs import DelayedRecall

import rtrl_agents as ra
import rtrl_cells as rc

Leaky = rc.testing.LeakyTanh


@pytest.fixture
def leaky():
    kind = rc.register_cell("leaky", Leaky)
    yield kind
    rc.unregister_cell("leaky")


def _config(core: ra.CoreConfig) -> ra.R2ACConfig:
    net = ra.NetworkConfig(torso=ra.TorsoConfig(hidden_sizes=(4,)), core=core)
    return ra.R2ACConfig(network=net, rollout_length=4)


def test_config_names_come_from_the_registries(leaky):
    for method in rc.method_names():
        assert ra.CoreConfig(method=method).method == method
    core = ra.CoreConfig(cell="leaky", hidden_size=3)  # registered: accepted
    env = DelayedRecall(num_envs=2)
    state = ra.r2ac(_config(core), env.spec).init(jax.random.PRNGKey(0))
    assert isinstance(state.params.core, Leaky)
    assert state.params.core.hidden_size == 3
    with pytest.raises(
        ValueError, match=r"cell='leakyy' is unknown; use one of .*leaky"
    ):
        ra.CoreConfig(cell="leakyy")
    with pytest.raises(ValueError, match="method='rtlr' is unknown; use one of"):
        ra.CoreConfig(method="rtlr")


@pytest.mark.parametrize(
    ("core", "cell", "match"),
    [
        (
            ra.CoreConfig(cell="elstm", hidden_size=4),
            dict(kind="gru", hidden_size=4),
            r"is a GRU \(registered as 'gru'\) but CoreConfig.cell='elstm'",
        ),
        (
            ra.CoreConfig(cell="elstm", hidden_size=4),
            dict(kind="elstm", hidden_size=6),
            "has hidden_size 6 but CoreConfig.hidden_size=4",
        ),
        (
            ra.CoreConfig(cell="rtu", hidden_size=4),
            dict(kind="rtu", hidden_size=4, nonlinear=False),
            "has nonlinear=False but the CoreConfig sets True",
        ),
        (
            ra.CoreConfig(cell="none"),
            dict(kind="elstm", hidden_size=4),
            "CoreConfig.cell='none'",
        ),
    ],
)
def test_a_cell_object_that_contradicts_the_config_is_refused(core, cell, match):
    env = DelayedRecall(num_envs=2)
    kind = rc.cell_kind(cell.pop("kind"))
    obj = kind.make(input_size=5, key=jax.random.PRNGKey(0), **cell)
    with pytest.raises(ValueError, match=match) as e:
        ra.r2ac(_config(core), env.spec, cell=obj)
    assert "\n" not in str(e.value)


def test_an_unregistered_cell_object_is_refused():
    env = DelayedRecall(num_envs=2)
    obj = Leaky(input_size=5, hidden_size=4, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="is a LeakyTanh, which is not a registered"):
        ra.r2ac(_config(ra.CoreConfig(hidden_size=4)), env.spec, cell=obj)


def test_a_cell_object_that_agrees_is_used(leaky):
    env = DelayedRecall(num_envs=2)
    core = ra.CoreConfig(cell="leaky", hidden_size=4)
    obj = Leaky(input_size=5, hidden_size=4, key=jax.random.PRNGKey(7))
    state = ra.r2ac(_config(core), env.spec, cell=obj).init(jax.random.PRNGKey(0))
    assert jnp.array_equal(state.params.core.W, obj.W)
    # The same through the sequence learner's network.
    seq = ra.SequenceLearnerConfig(core=dataclasses.replace(core, method="tbptt"))
    net = ra.PredictionNet(seq.core, 5, 2, key=jax.random.PRNGKey(0), cell=obj)
    assert net.core is obj


def test_the_actor_keyword_is_trace_update():
    env = DelayedRecall(num_envs=2)
    agent = ra.r2ac(_config(ra.CoreConfig(hidden_size=4)), env.spec)
    state = agent.init(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(1))
    actor = ra.Actor(agent, env, *keys, state, trace_update="chunked")
    assert actor.trace_update == "chunked"
    with pytest.warns(DeprecationWarning, match="renamed trace_update"):
        old = ra.Actor(agent, env, *keys, state, traces="chunked")
    assert old.trace_update == "chunked"
    with pytest.raises(ValueError, match="unknown trace update 'bptt'"):
        ra.Actor(agent, env, *keys, state, trace_update="bptt")
