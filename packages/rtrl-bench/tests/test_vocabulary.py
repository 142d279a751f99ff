"""One vocabulary: a cell registered in rtrl-cells, in one place, appears in the
gradient check, the CLI's choices, the sequence configs and the agents' configs;
the method choices are rtrl-cells' methods."""

import jax
import jax.numpy as jnp
import pytest

import rtrl_agents as ra
import rtrl_cells as rc
from rtrl_bench import _complexity, _gradcheck, _speed, main
from rtrl_bench._cli import build_parser
from rtrl_bench._experiments import SequenceConfig

Leaky = rc.testing.LeakyTanh


@pytest.fixture
def leaky():
    yield rc.register_cell("leaky", Leaky)
    rc.unregister_cell("leaky")


def test_a_registered_cell_appears_everywhere(leaky, capsys):
    # The gradient check and its CLI.
    rows = _gradcheck.run_gradcheck(cells=["LeakyTanh"], length=4)
    assert [(r.cell, r.method) for r in rows] == [
        ("LeakyTanh", "online"),
        ("LeakyTanh", "chunked"),
    ]
    assert all(r.ok for r in rows)
    assert main(["gradcheck", "--cells", "LeakyTanh", "--length", "4"]) == 0
    assert "| LeakyTanh |" in capsys.readouterr().out
    # The configurations (sequence learners, agents) and the complexity study.
    assert SequenceConfig("copy", "leaky", 4, "rtrl").cell == "leaky"
    assert ra.CoreConfig(cell="leaky").cell == "leaky"
    assert _complexity.ComplexityConfig(cell="leaky").cell == "leaky"
    # The benchmarks' choices.
    args = build_parser().parse_args(["complexity", "--cell", "leaky"])
    assert args.cell == "leaky"
    assert "LeakyTanh" in rc.cell_examples(dense=False)
    assert _speed.make_cell("LeakyTanh", 4, 3, jax.random.PRNGKey(0)).W.dtype == (
        jnp.float32
    )


def test_names_are_validated_against_the_registries(capsys):
    with pytest.raises(ValueError, match="cell='indrnn' is unknown; use one of elstm"):
        SequenceConfig("copy", "indrnn", 4, "rtrl")
    with pytest.raises(ValueError, match="method='rtlr' is unknown; use one of"):
        SequenceConfig("copy", "elstm", 4, "rtlr")
    assert SequenceConfig("copy", "elstm", 4, "chunked").method == "chunked"
    with pytest.raises(SystemExit):
        main(["gradcheck", "--cells", "LeakyTanh"])  # not registered now
    assert "unknown cell 'LeakyTanh'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["gradcheck", "--methods", "bptt"])  # not exact: nothing to check
    assert "invalid choice: 'bptt'" in capsys.readouterr().err


def test_columns_and_choices_come_from_the_registries():
    # Derived, not listed: a new cell or method changes them without an edit.
    assert _speed.METHODS[0] == rc.BPTT.name
    assert set(_speed.METHODS) == {*rc.METHODS, "chunked-grad", "forward"}
    assert _gradcheck.exact_methods() == tuple(
        name for name, m in rc.METHODS.items() if m.exact
    )
    assert tuple(rc.cell_examples(dense=False)) == _speed.CELLS
    assert set(_complexity.METHODS) >= {
        f"exact-{m}" for m in _gradcheck.exact_methods()
    }


def test_cells_options_take_registry_names_and_labels(capsys):
    # A user types the name a cell is registered by (what configs hold), or a
    # label of one of its option sets.
    from rtrl_bench._cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["gradcheck", "--cells", "rtu", "ELSTM", "online-lru"])
    assert args.cells == ["RTU(relu)", "RTU(tanh)", "RTU(linear)", "ELSTM", "OnlineLRU"]
    assert parser.parse_args(["speed", "--cells", "LRU", "lru"]).cells == ["LRU"]
    with pytest.raises(SystemExit):
        parser.parse_args(["speed", "--cells", "gru"])  # dense: not in speed
    assert "unknown cell 'gru'" in capsys.readouterr().err
