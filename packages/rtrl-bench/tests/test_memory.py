"""`rtrl-bench memory`: each arm's peak memory from its own child process."""

import json

import pytest

from rtrl_bench import main
from rtrl_bench._memory import frames_per_update, measure_arm


def test_frames_per_update_is_one_update_of_all_streams():
    # popgym: 8 streams x a rollout of 256; MuJoCo: 1 stream x 2048.
    assert frames_per_update("popgym-repeatfirstmedium", "gru-tbptt") == 8 * 256
    assert frames_per_update("mujoco-ant-p", "rtu-rtrl") == 2048
    with pytest.raises(ValueError, match="has no variant 'gru'"):
        frames_per_update("popgym-repeatfirstmedium", "gru")


def test_an_arm_over_the_cap_is_stopped_and_reported_as_a_bound():
    # The Python interpreter with JAX imported is well above 50 MiB: the watcher
    # must stop the child and report the cap as a lower bound, not a measurement.
    row = measure_arm("horizon", "rtrl", cap_gb=0.05)
    assert row.status == "over cap"
    assert row.peak_gb >= 0.05
    assert row.seconds < 60  # stopped, not trained


def test_a_failing_child_reports_its_last_line(tmp_path):
    # A checkout whose rtrl_bench cannot be imported: the child fails and says why.
    broken = tmp_path / "packages" / "rtrl-bench" / "src" / "rtrl_bench"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('broken checkout')\n")
    row = measure_arm("horizon", "rtrl", checkout=str(tmp_path))
    assert row.status.startswith("failed (exit 1)")
    assert "broken checkout" in row.error


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    assert main(["memory", "horizon", "--checkout", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has no packages/*/src" in err
    assert main(["memory", "no-such-experiment"]) == 2
    assert "no-such-experiment" in capsys.readouterr().err


@pytest.mark.slow
def test_one_update_is_measured(tmp_path, capsys):
    out = tmp_path / "memory.json"
    assert main(["memory", "horizon", "--variants", "rtrl", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["status"] == "ok" and row["updates"] == 1
    # The child's own peak: JAX and a compiled update, far below the cap.
    assert 0.1 < row["peak_gb"] < 8
    assert "| horizon | rtrl | 1 |" in capsys.readouterr().out
