"""The public API is pinned: a change to it is a deliberate, versioned change."""

import importlib.metadata
import inspect

import rtrl_cells as rc

PUBLIC = {
    "BPTT",
    "CELLS",
    "CHUNKED",
    "METHODS",
    "ONLINE",
    "AbstractCell",
    "AbstractElementwiseCell",
    "AbstractStack",
    "CellContractError",
    "CellExample",
    "CellKind",
    "ELSTM",
    "GRU",
    "GradientMethod",
    "LRU",
    "LSTM",
    "OnlineLRU",
    "AbstractLRU",
    "RTU",
    "LayerLocalApproxStack",
    "RTRLCarry",
    "Stack",
    "cell_examples",
    "cell_kind",
    "cell_kind_of",
    "check_cell",
    "example_cells",
    "gradient_error",
    "gradient_errors",
    "gradient_errors_by_method",
    "method",
    "method_names",
    "recurrent",
    "recurrent_fields",
    "register_cell",
    "testing",
    "trace_size",
    "unregister_cell",
    "Workarounds",
    "use_workarounds",
    "workarounds",
}


def test_public_names():
    assert set(rc.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(rc, name) is not None
    assert tuple(rc.METHODS) == ("online", "chunked", "bptt")
    assert tuple(rc.CELLS) == ("elstm", "lru", "online-lru", "rtu", "gru", "lstm")
    assert rc.testing.__all__ == ["CellTests", "LeakyTanh"]
    # The module and the installed distribution agree on the version.
    assert rc.__version__ == importlib.metadata.version("rtrl-cells")


def test_contract_signatures():
    params = inspect.signature(rc.AbstractCell.unroll).parameters
    assert list(params) == ["self", "carry", "xs", "resets", "method"]
    assert params["method"].default == "chunked"
    assert list(inspect.signature(rc.AbstractCell.step).parameters) == [
        "self",
        "carry",
        "x_t",
        "reset_t",
    ]
    for cls in (rc.ELSTM, rc.LRU, rc.RTU, rc.GRU, rc.LSTM):
        kw = inspect.signature(cls.__init__).parameters
        assert {"input_size", "hidden_size", "key"} <= set(kw)
        assert all(
            kw[n].kind is inspect.Parameter.KEYWORD_ONLY
            for n in ("input_size", "hidden_size", "key")
        )
    assert "nonlinear" in inspect.signature(rc.RTU.__init__).parameters


def test_importing_pulls_in_only_jax_and_equinox():
    import subprocess
    import sys

    code = (
        "import sys, rtrl_cells; "
        "bad = [m for m in ('optax', 'torch', 'tensorflow', 'numpy.testing', "
        "'rtrl_agents', 'rtrl_envs', 'pytest') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
