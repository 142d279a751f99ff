"""Bad input fails at once with a one-line ValueError that says what was expected."""

import jax
import jax.numpy as jnp
import pytest

import rtrl_cells as rc

KEY = jax.random.PRNGKey(0)


@pytest.fixture
def cell():
    return rc.ELSTM(input_size=3, hidden_size=4, key=KEY)


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value)


def test_wrong_input_width(cell):
    with pytest.raises(ValueError, match=r"expected xs of shape \(T, 3\)") as e:
        cell.unroll(cell.init_carry(), jnp.zeros((5, 4)), jnp.zeros(5, bool))
    _one_line(e)
    with pytest.raises(ValueError, match=r"expected x_t of shape \(3,\)"):
        cell.step(cell.init_carry(), jnp.zeros(4), jnp.array(False))
    with pytest.raises(ValueError, match=r"batch streams with jax\.vmap"):
        cell.unroll(cell.init_carry(), jnp.zeros((2, 5, 3)), jnp.zeros(5, bool))


def test_resets_of_wrong_length(cell):
    with pytest.raises(ValueError, match=r"resets must have shape \(5,\)") as e:
        cell.unroll(cell.init_carry(), jnp.zeros((5, 3)), jnp.zeros(4, bool))
    _one_line(e)


def test_resets_of_wrong_dtype(cell):
    with pytest.raises(ValueError, match=r"must be a bool array") as e:
        cell.unroll(cell.init_carry(), jnp.zeros((5, 3)), jnp.zeros(5))
    _one_line(e)
    with pytest.raises(ValueError, match="reset_t must be a bool array"):
        cell.step(cell.init_carry(), jnp.zeros(3), 0)


def test_unknown_method(cell):
    with pytest.raises(
        ValueError, match=r"unknown method 'rtlr'.*online, chunked, bptt"
    ) as e:
        cell.unroll(cell.init_carry(), jnp.zeros((5, 3)), jnp.zeros(5, bool), "rtlr")
    _one_line(e)


def test_stack_widths_must_chain():
    l1 = rc.ELSTM(input_size=3, hidden_size=4, key=KEY)
    l2 = rc.ELSTM(input_size=5, hidden_size=2, key=KEY)
    with pytest.raises(ValueError, match="layer 0 outputs 4 but layer 1 expects") as e:
        rc.Stack([l1, l2])
    _one_line(e)
    with pytest.raises(ValueError, match="layer widths do not chain"):
        rc.LayerLocalApproxStack([l1, l2])
    with pytest.raises(ValueError, match="at least one layer"):
        rc.Stack([])
    with pytest.raises(ValueError, match="not stacks"):
        rc.Stack([rc.Stack([l1])])


def test_carry_from_another_cell(cell):
    other = rc.ELSTM(input_size=3, hidden_size=6, key=KEY)
    with pytest.raises(ValueError, match="carry does not belong to this ELSTM"):
        cell.unroll(other.init_carry(), jnp.zeros((5, 3)), jnp.zeros(5, bool))
    with pytest.raises(ValueError, match="expected an RTRLCarry"):
        cell.unroll((jnp.zeros(4),), jnp.zeros((5, 3)), jnp.zeros(5, bool))


@pytest.mark.parametrize("size", [0, -2, 2.5, True])
def test_bad_sizes(size):
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        rc.ELSTM(input_size=3, hidden_size=size, key=KEY)
    with pytest.raises(ValueError, match="input_size must be a positive int"):
        rc.RTU(input_size=size, hidden_size=3, key=KEY)


def test_unknown_activation():
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'.*relu, tanh"):
        rc.RTU(input_size=3, hidden_size=3, activation="gelu", key=KEY)
