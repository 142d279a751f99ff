"""One vocabulary: the cell registry and the gradient methods, defined here once."""

import jax
import jax.numpy as jnp
import pytest

import rtrl_cells as rc

KEY = jax.random.PRNGKey(0)


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value)


def test_methods_and_their_aliases():
    assert [m.name for m in rc.METHODS.values()] == ["online", "chunked", "bptt"]
    assert rc.method("rtrl") is rc.CHUNKED is rc.method("rtrl-chunked")
    assert rc.method("rtrl-online") is rc.ONLINE
    assert rc.method("tbptt") is rc.BPTT is rc.method(rc.BPTT)
    assert rc.method_names(aliases=False) == ("online", "chunked", "bptt")
    assert set(rc.method_names()) == {
        "online",
        "chunked",
        "bptt",
        "rtrl-online",
        "rtrl",
        "rtrl-chunked",
        "tbptt",
    }
    assert [m.exact for m in rc.METHODS.values()] == [True, True, False]
    assert rc.CHUNKED.step_method is rc.ONLINE and rc.BPTT.step_method is rc.BPTT
    with pytest.raises(ValueError, match=r"unknown method 'rtlr'.*aliases: ") as e:
        rc.method("rtlr")
    _one_line(e)


def test_an_alias_runs_the_same_method():
    cell = rc.ELSTM(input_size=3, hidden_size=4, key=KEY)
    xs, resets = jnp.ones((4, 3)), jnp.zeros(4, bool)
    carry = cell.init_carry()
    a = cell.unroll(carry, xs, resets, "rtrl")
    b = cell.unroll(carry, xs, resets, rc.CHUNKED)
    assert all(
        jnp.array_equal(x, y)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_the_built_in_cells():
    assert {k: v.cls for k, v in rc.CELLS.items()} == {
        "elstm": rc.ELSTM,
        "lru": rc.LRU,
        "online-lru": rc.OnlineLRU,
        "rtu": rc.RTU,
        "gru": rc.GRU,
        "lstm": rc.LSTM,
    }
    assert [k for k, v in rc.CELLS.items() if v.dense] == ["gru", "lstm"]
    assert list(rc.cell_examples(dense=False)) == [
        "ELSTM",
        "LRU",
        "OnlineLRU",
        "RTU(relu)",
        "RTU(tanh)",
        "RTU(linear)",
    ]
    rtu = rc.CELLS["rtu"].make(
        input_size=3, hidden_size=2, key=KEY, nonlinear=False, activation="tanh"
    )
    assert isinstance(rtu, rc.RTU) and not rtu.nonlinear
    assert rc.cell_kind_of(rtu) is rc.CELLS["rtu"]
    assert rc.cell_kind_of(rc.Stack([rtu])) is None
    assert set(rc.CELLS["rtu"].options) >= {"nonlinear", "activation", "r_min"}
    assert rc.CELLS["elstm"].options == ()


def test_registry_errors_are_one_line():
    with pytest.raises(
        ValueError, match=r"unknown cell 'transformer'.*elstm, lru"
    ) as e:
        rc.cell_kind("transformer")
    _one_line(e)
    for bad in ("ELSTM", "none", "a b"):
        with pytest.raises(ValueError, match="must match") as e:
            rc.register_cell(bad, rc.ELSTM)
        _one_line(e)
    with pytest.raises(ValueError, match="already registered as 'elstm'") as e:
        rc.register_cell("elstm", rc.ELSTM)
    _one_line(e)
    with pytest.raises(ValueError, match="subclass of") as e:
        rc.register_cell("stack", rc.Stack)
    _one_line(e)
    with pytest.raises(ValueError, match="takes no option 'nonlinear'") as e:
        rc.CELLS["elstm"].make(input_size=3, hidden_size=4, key=KEY, nonlinear=False)
    _one_line(e)
    with pytest.raises(ValueError, match="example option 'width'") as e:
        rc.register_cell("elstm2", rc.ELSTM, examples={"wide": {"width": 2}})
    _one_line(e)
    assert "elstm2" not in rc.CELLS
