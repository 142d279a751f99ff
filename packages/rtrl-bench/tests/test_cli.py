"""The command line: gradcheck passes, fails loudly, and records provenance."""

import importlib.metadata
import json

import jax
import pytest

import rtrl_cells as rc
from rtrl_bench import _gradcheck, main


def test_gradcheck_prints_table_and_passes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345")
    out = tmp_path / "g.json"
    assert main(["gradcheck", "--length", "4", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| cell | online | chunked |" in text
    for name in (
        "ELSTM",
        "LRU",
        "RTU(relu)",
        "RTU(linear)",
        "GRU",
        "LSTM",
        "Stack(ELSTM,ELSTM)",
    ):
        assert f"| {name} |" in text
    data = json.loads(out.read_text())
    assert all(r["max_rel_error"] <= 1e-9 for r in data["rows"])
    assert len(data["rows"]) == 2 * len(rc.example_cells(jax.random.PRNGKey(0)))
    installed = importlib.metadata.version("rtrl-cells")
    assert data["provenance"]["versions"]["rtrl-cells"] == installed
    assert data["provenance"]["versions"]["jax"]
    # Allocator settings move CPU timings: they are kept with every result.
    assert data["provenance"]["allocator_env"]["MALLOC_TRIM_THRESHOLD_"] == "12345"


def test_gradcheck_exits_nonzero_above_threshold(monkeypatch, capsys):
    rows = [
        _gradcheck.GradcheckRow("ELSTM", "online", 3e-9),
        _gradcheck.GradcheckRow("ELSTM", "chunked", 1e-16),
    ]
    monkeypatch.setattr(_gradcheck, "run_gradcheck", lambda **kw: rows)
    assert main(["gradcheck"]) == 1
    captured = capsys.readouterr()
    assert "3.0e-09 FAIL" in captured.out
    assert "FAILED: 1 check(s)" in captured.err


def test_unknown_subcommand_is_an_error():
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2
