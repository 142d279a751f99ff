"""`rtrl-bench run --ray` and `rtrl-bench scale` on a local Ray cluster.

Ray's local cluster stays on loopback (single-node mode, set before Ray is
imported). Skipped where Ray is not installed (``rtrl-agents[ray]``).
"""

import json
import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import pytest

from rtrl_bench import main
from rtrl_bench._scale import ScaleRow, format_table


def test_ray_runs_agents_only_and_needs_a_divisor_of_the_streams(tmp_path, capsys):
    argv = ["run", "copy", "--ray", "local", "--logdir", str(tmp_path)]
    assert main(argv) == 2
    assert "--ray runs agents that act in environments" in capsys.readouterr().err
    # Any agent runs on Ray; the streaming experiment's one stream cannot be
    # split between two actors.
    argv = ["run", "streaming", "--ray", "local", "--logdir", str(tmp_path)]
    assert main(argv) == 2
    assert "--actors 2 must divide streaming's 1 streams" in capsys.readouterr().err
    argv = ["run", "horizon", "--ray", "local", "--actors", "3"]
    assert main([*argv, "--logdir", str(tmp_path)]) == 2
    assert "--actors 3 must divide horizon's 32 streams" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # failed before anything ran


def test_run_with_ray_actors_logs_checkpoints_and_evaluates(tmp_path):
    pytest.importorskip("ray", reason="needs the ray extra: rtrl-agents[ray]")
    argv = ["run", "horizon", "--ray", "local", "--actors", "2", "--variants", "rtrl"]
    argv += ["--frames", "2048", "--logdir", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    run = tmp_path / "horizon" / "rtrl" / "seed0"
    assert list(run.glob("events.out.tfevents.*"))
    assert [p for p in (run / "ckpt").iterdir() if p.name.isdigit()]
    reports = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert reports[-1]["frames"] >= 2048
    assert 0.0 < reports[-1]["learner_share"] < 1.0
    assert reports[-1]["actor_restarts"] == 0
    result = json.loads((run / "result.json").read_text())
    assert result["ray"] == {"address": "local", "actors": 2}
    assert 0.0 <= result["score"] <= 1.0 and result["eval_episodes"] == 256


def test_scale_measures_single_and_ray_in_one_run(tmp_path, capsys):
    pytest.importorskip("ray", reason="needs the ray extra: rtrl-agents[ray]")
    out = tmp_path / "scale.json"
    argv = ["scale", "--updates", "12", "--actors", "1", "--json", str(out)]
    assert main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["mode"] for r in rows] == ["single", "ray x1"]
    assert all(r["fps"] > 0 for r in rows)
    assert 0.0 < rows[1]["learner_share"] < 1.0
    assert "| ray x1 | 1 |" in capsys.readouterr().out


def test_scale_table_gives_speedups_over_the_single_machine_loop():
    rows = [
        ScaleRow("single", 0, 1000.0, float("nan"), 0.0, 10),
        ScaleRow("ray x2", 2, 2500.0, 0.4, 1.5, 10),
    ]
    table = format_table(rows)
    assert "| single | 0 | 1,000 | 1.00x | - | 0.00 |" in table
    assert "| ray x2 | 2 | 2,500 | 2.50x | 0.40 | 1.50 |" in table
