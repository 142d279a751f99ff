"""The complexity study at a tiny size: report files, budget skips, L=2 formula."""

import json

import pytest

from rtrl_bench import _complexity as cx
from rtrl_bench import main


def elstm_rec(N, D):
    """|theta_rec| of one ELSTM layer: F, Z (N x D) and w_f, w_z, b_f, b_z (N)."""
    return 2 * N * D + 4 * N


def elstm_all(N, D):
    """|theta| of one ELSTM layer: theta_rec plus the output gate O, W_o, b_o."""
    return elstm_rec(N, D) + N * D + N * N + N


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("complexity")
    D = 3
    cfg = cx.ComplexityConfig(
        entries=(
            cx.Entry("exact-chunked", 2),
            cx.Entry("bptt", 1, max_width=4),
            cx.Entry("dense-step", 1),
        ),
        widths=(4, 8),
        input_size=D,
        steps=4,
        stream_steps=4,
        batch=2,
        rounds=1,
        # Between the dense GRU's estimates at N=4 (19 kB) and N=8 (102 kB), above
        # the exact stack's at N=8 (80 kB).
        budget_gb=90e3 / 1e9,
        memory_lengths=(),
    )
    result = cx.run_complexity(cfg, log=lambda line: None)
    return result, cx.write_report(result, out), out


def test_report_files_exist(study):
    _, _, out = study
    assert (out / "complexity.md").stat().st_size > 0
    assert (out / "complexity_L1.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "complexity_L2.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads((out / "complexity.json").read_text())
    assert data["provenance"]["versions"]["rtrl-cells"]
    assert len(data["rows"]) == 3 * 2
    text = (out / "complexity.md").read_text()
    assert "## Growth exponents in N" in text
    assert "| exact-chunked | 2 |" in text


def test_over_budget_is_reported_not_run(study):
    result, _, out = study
    by = {(r.method, r.N): r for r in result.rows}
    skipped = by[("dense-step", 8)]
    assert skipped.status == "over-budget"
    assert skipped.time_per_step_s is None
    assert "would need 102 kB" in skipped.note
    assert "would need 102 kB" in (out / "complexity.md").read_text()
    assert by[("dense-step", 4)].status == "ok"
    assert by[("bptt", 8)].status == "not-timed"


def test_measured_two_layer_trace_memory_matches_formula(study):
    result, _, _ = study
    rows = [r for r in result.rows if r.method == "exact-chunked"]
    assert [r.N for r in rows] == [4, 8]
    for r in rows:
        assert r.status == "ok" and r.time_per_step_s > 0
        N, D = r.N, r.D
        # Own blocks, 1 x |theta_rec,l| per layer (layer 2 reads N inputs), plus
        # the dense cross block N_2 x |theta_1| over all of layer 1's parameters.
        formula = elstm_rec(N, D) + elstm_rec(N, N) + N * elstm_all(N, D)
        assert r.trace_entries == formula
        assert r.carry_trace_bytes == 4 * formula
        assert r.compiled_temp_bytes > 0


def test_exponent_fit_recovers_a_power_law():
    assert cx.fit_exponent([32, 64, 128], [3 * n**2.5 for n in (32, 64, 128)]) == (
        pytest.approx(2.5)
    )


def test_config_validation():
    with pytest.raises(ValueError, match="unknown method"):
        cx.Entry("magic", 1)
    with pytest.raises(ValueError, match="single layer"):
        cx.Entry("dense-step", 2)
    with pytest.raises(ValueError, match="budget_gb"):
        cx.ComplexityConfig(budget_gb=0)
    with pytest.raises(ValueError, match="cell='gru' must be a registered element"):
        cx.ComplexityConfig(cell="gru")
    with pytest.raises(ValueError, match="dense_cell='lru' must be a registered dense"):
        cx.ComplexityConfig(dense_cell="lru")


def test_arms_come_from_the_gradient_methods():
    assert cx.METHODS == (
        "exact-step",
        "exact-online",
        "exact-chunked",
        "local",
        "bptt",
        "dense-step",
        "dense-chunked",
    )
    assert [cx.unroll_method(m) for m in cx.METHODS] == [
        "step",
        "online",
        "chunked",
        "chunked",
        "bptt",
        "step",
        "chunked",
    ]


def test_formula_counts_match_the_closed_forms():
    N, D = 8, 5
    # ELSTM: own 2ND + 4N; all parameters 3ND + N^2 + 5N; dense GRU N |theta|.
    assert cx.layer_counts("elstm", N, D)[:2] == (
        elstm_rec(N, D),
        elstm_all(N, D),
    )
    gru = 3 * N * D + 3 * N * N + 4 * N
    assert cx.trace_formula("dense-chunked", 1, N, D) == N * gru
    assert cx.trace_formula("bptt", 3, N, D) == 0
    # Another layer cell: the LRU's output is D wide, so layer 2 reads D inputs.
    lru = cx.ComplexityConfig(cell="lru")
    own = cx.layer_counts("lru", N, D)[0]
    lru_all = cx.layer_counts("lru", N, D)[1]
    assert cx.trace_formula("exact-chunked", 2, N, D, lru) == 2 * own + 2 * N * lru_all
    assert cx.theory("exact-chunked", 2, lru)[:2] == (None, None)
    assert cx.theory("exact-chunked", 2)[:2] == (3, 3)


def test_cli_has_complexity_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        main(["complexity", "--help"])
    assert e.value.code == 0
    assert "--full" in capsys.readouterr().out
