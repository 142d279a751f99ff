"""`rtrl-bench report`: IQM with bootstrap intervals, one seed as one seed, runs
without a result listed, provenance of installed packages, labelled curves."""

import json

import numpy as np
import pytest

from rtrl_bench import main, write_report
from rtrl_bench._report import bootstrap_interval, iqm


def _result(folder, variant, seed, score, curve, **extra):
    d = folder / "horizon" / variant / f"seed{seed}"
    d.mkdir(parents=True)
    payload = {
        "experiment": "horizon",
        "variant": variant,
        "seed": seed,
        "frames": 1000,
        "env_frames": 1000,
        "updates": 10,
        "metric": "success",
        "score": score,
        "eval_episodes": 8,
        "train_score": score,
        "seconds": 1.0,
        "path": str(d),
        "chance": 0.5,
        "curve_metric": "episode_return",
        "curve": curve,
        "provenance": {
            "versions": {"rtrl-bench": "0.3.0", "jax": "0.10.2"},
            "device": "TFRT_CPU_0",
            "git_commit": None,
            "source": "an installed package, no git checkout",
        },
        **extra,
    }
    (d / "result.json").write_text(json.dumps(payload))
    (d / "config.json").write_text(json.dumps({"config": {}}))
    return d


def test_iqm_and_bootstrap_interval_against_hand_values():
    x = np.array([0.0, 1.0, 2.0, 3.0, 100.0, 5.0, 6.0, 7.0])
    # The middle half of 0,1,2,3,5,6,7,100 is 2,3,5,6.
    assert iqm(x) == 4.0
    assert iqm(np.array([1.0, 2.0, 9.0])) == 4.0  # n = 3 cuts nothing
    lo, hi = bootstrap_interval(np.array([0.4, 0.5, 0.6, 0.7]), np.mean)
    assert 0.4 <= lo < 0.55 < hi <= 0.7
    # Reproducible: a fixed resampling seed.
    assert bootstrap_interval(x) == bootstrap_interval(x)


def test_report_gives_iqm_intervals_one_seed_and_unfinished_runs(tmp_path, capsys):
    curve = [[100, 0.4], [200, 0.5]]
    for seed, score in enumerate((0.9, 1.0, 0.95, 1.0)):
        _result(tmp_path, "rtrl", seed, score, curve)
    _result(tmp_path, "tbptt", 0, 0.5, [[100, 0.5]])
    _result(tmp_path, "feedforward", 0, 0.5, curve)
    _result(tmp_path, "feedforward", 2, 0.52, curve)
    stuck = tmp_path / "horizon" / "tbptt" / "seed1"
    stuck.mkdir(parents=True)
    (stuck / "config.json").write_text("{}")
    assert main(["report", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    lo, hi = bootstrap_interval(np.array([0.9, 1.0, 0.95, 1.0]))
    assert f"| rtrl | 4 | 1k | 0.975 [{lo:.3g}, {hi:.3g}] | 0.962 +- 0.041 |" in text
    assert "| tbptt | 1 | 1k | 0.5 (1 seed) | - | 0.5 |" in text
    assert "| feedforward | 2 | 1k | 0.51 (too few seeds for an interval) |" in text
    # Seeds 0-3 exist for rtrl: the others are missing some (the comparison is
    # over unequal seeds).
    assert (
        "Missing seeds (no result): tbptt: seed 1, 2, 3; feedforward: seed 1, 3" in text
    )
    assert "## Runs without a result" in text and str(stuck) in text
    assert "rtrl-bench 0.3.0 (an installed package, no git checkout)" in text
    assert "None" not in text
    png = tmp_path / "report_horizon.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_labels_its_bands_and_marks_sparse_curves(tmp_path, monkeypatch):
    import matplotlib.axes

    calls = {"plot": [], "fill": []}
    plot, fill = matplotlib.axes.Axes.plot, matplotlib.axes.Axes.fill_between

    def spy_plot(self, *a, **kw):
        calls["plot"].append(kw)
        return plot(self, *a, **kw)

    def spy_fill(self, *a, **kw):
        calls["fill"].append(kw)
        return fill(self, *a, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy_plot)
    monkeypatch.setattr(matplotlib.axes.Axes, "fill_between", spy_fill)
    for seed in range(3):
        _result(tmp_path, "rtrl", seed, 1.0, [[100, 0.4 + 0.1 * seed]])
    _result(tmp_path, "tbptt", 0, 0.5, [[100, 0.5]])
    write_report(tmp_path)
    labels = [kw.get("label") for kw in calls["plot"]]
    assert "rtrl: mean of 3" in labels and "tbptt (1 seed)" in labels
    assert all(kw.get("marker") == "o" for kw in calls["plot"][:2])
    assert [kw["label"] for kw in calls["fill"]] == ["rtrl: 95% bootstrap CI"]


def test_report_names_runs_without_results_when_there_are_none(tmp_path, capsys):
    stuck = tmp_path / "horizon" / "rtrl" / "seed0"
    stuck.mkdir(parents=True)
    (stuck / "config.json").write_text("{}")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "1 run(s) without a result" in err and err.count("\n") == 1


@pytest.mark.parametrize("score", [None])
def test_a_failed_evaluation_is_shown_not_dropped(tmp_path, score):
    _result(tmp_path, "rtrl", 0, score, [[100, 0.4]])
    write_report(tmp_path)
    assert "| rtrl | 1 | 1k | nan (1 seed) |" in (tmp_path / "report.md").read_text()


def test_report_names_runs_made_with_another_config_than_the_registry():
    # An override (or --config) must not pass for the registered experiment.
    import dataclasses

    import rtrl_agents as ra
    from rtrl_bench import get_experiment
    from rtrl_bench._report import registry_differences
    from rtrl_bench._run import run_config

    exp = get_experiment("horizon")
    variant = exp.variants[0]
    config = run_config(exp, variant, 0, 20_000)
    result = {"experiment": "horizon", "variant": variant.name, "seed": 0}
    result["frames"] = 20_000
    same = {**result, "config": ra.config_to_json(config)}
    assert registry_differences([same]) == []
    agent = dataclasses.replace(config.agent, learning_rate=2e-3)
    altered = {
        **result,
        "config": ra.config_to_json(dataclasses.replace(config, agent=agent)),
    }
    (line,) = registry_differences([altered])
    assert line == f"{variant.name}: agent.learning_rate: 0.005 -> 0.002"
    gone = {**same, "experiment": "no-such-experiment"}
    assert registry_differences([gone]) == [
        f"{variant.name}: not in this version's registry"
    ]


def test_report_states_deliberate_deviations_next_to_the_scores(tmp_path):
    from rtrl_bench import get_experiment

    (deviation,) = get_experiment("mujoco-hopper-p").deviations
    assert "time limit" in deviation
    _result(tmp_path, "rtrl", 0, 0.9, [[100, 0.4]], deviations=[deviation])
    text = write_report(tmp_path)["markdown"].read_text()
    section = text.split("## horizon", 1)[1]
    assert f"can move these numbers: {deviation}." in section
    # None claimed where an experiment declares none.
    other = tmp_path / "other"
    _result(other, "rtrl", 0, 0.9, [[100, 0.4]])
    assert "Deliberate deviations" not in write_report(other)["markdown"].read_text()
