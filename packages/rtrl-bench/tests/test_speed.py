"""The speed benchmark measures every method side by side, and memory honestly."""

import json

from rtrl_bench import main
from rtrl_bench._speed import memory_rows, time_methods


def test_time_methods_interleaves_and_reports_ratios():
    rows = time_methods("ELSTM", 8, 5, 6, 2, runs=2, warmup=1)
    by = {r.method: r for r in rows}
    assert set(by) == {"bptt", "chunked", "online", "chunked-grad", "forward"}
    assert by["bptt"].ratio_to_bptt == 1.0
    for r in rows:
        assert r.median_s > 0 and r.runs == 2
        assert abs(r.ratio_to_bptt - r.median_s / by["bptt"].median_s) < 1e-12


def test_ab_times_each_workaround_off_beside_the_default(capsys):
    # Every method runs under the default engine and with each switch off, in
    # the same rounds; a variant's carry is built under its own switches (the
    # compact_traces variant's carry has another structure: it would not run).
    import pytest

    from rtrl_bench._speed import format_ab

    rows = time_methods(
        "LRU",
        8,
        5,
        4,
        2,
        methods=("bptt", "chunked"),
        runs=2,
        warmup=1,
        ab=[["compact_traces"], ["separate_batch_sums", "contiguous_adjoints"]],
    )
    got = {(r.workarounds, r.method) for r in rows}
    variants = ("", "compact_traces", "separate_batch_sums+contiguous_adjoints")
    assert got == {(v, m) for v in variants for m in ("bptt", "chunked")}
    for r in rows:
        assert r.median_s > 0
    table = format_ab(rows)
    assert "compact_traces off ms (x default)" in table
    assert table.count("| LRU | 8 | 5 | 4 | 2 |") == 2
    with pytest.raises(ValueError, match="unknown engine workaround 'fast'"):
        time_methods("LRU", 8, 5, 4, 2, runs=1, ab=[["fast"]])
    # The CLI refuses an unknown switch in one line, before timing anything.
    with pytest.raises(SystemExit) as e:
        main(["speed", "--cells", "LRU", "--config", "8,5,4,2", "--ab", "fast"])
    assert e.value.code != 0
    assert "invalid choice: 'fast'" in capsys.readouterr().err


def test_streaming_memory_is_constant_in_time_and_bptt_grows():
    rows = memory_rows("ELSTM", 16, 9, 2, lengths=(10, 400))
    mem = {(r.use, r.T): r.bytes for r in rows}
    assert mem[("online-step", 400)] <= 1.1 * mem[("online-step", 10)]
    assert mem[("bptt", 400)] > 5 * mem[("bptt", 10)]
    # An unrolled "online" call is not the streaming learner: it stores its steps
    # for its reverse passes, so it grows with T too, and it holds the new traces.
    assert mem[("online", 400)] > 5 * mem[("online", 10)]
    assert mem[("online", 10)] > rows[0].trace_bytes


def test_each_method_returns_what_its_learner_carries_on():
    # RTRL must return its new traces (or XLA drops the trace update as dead
    # code), except where it is timed as the learner that drops them on purpose;
    # BPTT must not return the traces it leaves untouched (or it is timed copying
    # them).
    import jax

    import rtrl_cells as rc
    from rtrl_bench._speed import _problem, gradient_fns

    cell, xs, resets, carry = _problem("RTU(relu)", 8, 5, 4, 2)
    for method in ("chunked", "online"):
        _, out = gradient_fns(cell, method)(cell, carry, xs, resets)
        assert isinstance(out, rc.RTRLCarry)
        assert jax.tree.structure(out) == jax.tree.structure(carry)
    for method in ("bptt", "forward"):
        _, out = gradient_fns(cell, method)(cell, carry, xs, resets)
        # The states alone (carry.for_method("bptt")): no trace leaves.
        assert not out.has_traces
        shapes = [x.shape for x in jax.tree.leaves(out)]
        assert shapes == [x.shape for x in jax.tree.leaves(carry.states)]
    # An R2AC learner keeps the gradient alone (its actors carry the traces).
    grad = gradient_fns(cell, "chunked-grad")(cell, carry, xs, resets)
    assert isinstance(grad, rc.RTU)


def test_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "speed.json"
    code = main(
        [
            "speed",
            "--cells",
            "RTU(linear)",
            "--config",
            "8,5,4,2",
            "--runs",
            "1",
            "--memory-lengths",
            "5",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert {r["method"] for r in data["speed"]} == {
        "bptt",
        "chunked",
        "online",
        "chunked-grad",
        "forward",
    }
    assert {r["use"] for r in data["memory"]} == {"online-step", "online", "bptt"}
    assert "| RTU(linear) | 8 | 5 | 4 | 2 |" in capsys.readouterr().out


def test_independent_public_contract_timing_script():
    # tools/time_public_contract.py (no code shared with this package) prints one
    # line per method with its ratio to bptt; an unknown cell is a one-line error.
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "tools" / "time_public_contract.py"
    run = [sys.executable, str(script), "--number", "1", "--repeat", "1"]
    done = subprocess.run(
        [*run, "--cell", "LRU", "--config", "8,5,4,2"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("LRU N,D,T,B=8,5,4,2")
    methods = [line.split()[0] for line in lines[1:]]
    assert methods == ["bptt", "online", "chunked", "chunked-grad"]
    assert lines[1].endswith("1.00x bptt")
    bad = subprocess.run([*run, "--cell", "GRUU"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown cell 'GRUU'" in bad.stderr
