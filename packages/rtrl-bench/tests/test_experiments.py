"""The experiment registry, `run`, `report` and `list`, at tiny budgets."""

import json

import pytest

import rtrl_agents as ra
from rtrl_bench import (
    EXPERIMENTS,
    BackendMissingError,
    CheckpointPolicy,
    Experiment,
    UnknownExperimentError,
    get_experiment,
    list_experiments,
    main,
    run_experiment,
    write_report,
)
from rtrl_bench._run import _schedule


def test_registry_holds_every_study_of_the_issue():
    names = list_experiments()
    assert names[0] == "horizon"
    for name in (
        "copy",
        "trace-conditioning",
        "dmlab-watermaze-m100",
        "dmlab-select-nonmatching-object-m10",
        "atari-breakout",
        "atari-seaquest",
        "procgen-chaser-m5",
        "procgen-chaser-m50",
        "mujoco-ant-p",
        "popgym-repeatfirstmedium",
        "streaming",
    ):
        assert name in names
    assert all(isinstance(e, Experiment) for e in EXPERIMENTS.values())


def test_horizon_is_delay_four_times_m_with_three_cores():
    exp = get_experiment("horizon")
    options = dict(exp.env.options)
    arms = {v.name: v.config for v in exp.variants}
    assert set(arms) == {"rtrl", "tbptt", "feedforward"}
    m = {c.rollout_length for c in arms.values()}
    assert m == {options["delay"] // 4}
    assert arms["rtrl"].network.core.method == "rtrl"
    assert arms["tbptt"].network.core.method == "tbptt"
    assert arms["feedforward"].network.core.cell == "none"
    assert exp.chance == 1 / options["num_symbols"]


def test_unknown_experiment_lists_close_matches(capsys):
    with pytest.raises(UnknownExperimentError, match="Did you mean horizon"):
        get_experiment("horizn")
    assert main(["run", "atari-breakot", "--frames", "10"]) == 2
    assert "atari-breakout" in capsys.readouterr().err


def test_dmlab_without_deepmind_lab_is_a_clear_error(tmp_path, capsys):
    exp = get_experiment("dmlab-watermaze-m100")
    pytest.importorskip("rtrl_envs")
    try:
        import deepmind_lab  # noqa: F401

        pytest.skip("DeepMind Lab is installed here")
    except ImportError:
        pass
    with pytest.raises(BackendMissingError, match="deepmind_lab"):
        run_experiment(exp, tmp_path, frames=10)
    assert main(["run", exp.name, "--logdir", str(tmp_path)]) == 2
    assert "DeepMind Lab" in capsys.readouterr().err


def test_list_prints_every_experiment(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in list_experiments():
        assert name in out
    assert "needs deepmind_lab" in out


def test_schedule_rounds_up_to_equal_chunks():
    updates, log_every = _schedule(2_048_000, 128)
    assert updates >= 16_000 and updates % log_every == 0
    assert _schedule(10, 128) == (1, 1)
    # Checkpoints: every 10th report by default, and by wall time.
    loop = CheckpointPolicy().loop(updates, log_every)
    assert loop.checkpoint_every == 10 * log_every
    assert loop.checkpoint_seconds == 300 and loop.keep_checkpoints == 3
    # A count is rounded up to whole reports (checkpoints happen at reports).
    assert CheckpointPolicy(every_updates=7).loop(320, 16).checkpoint_every == 16
    with pytest.raises(ValueError, match="keep at least 2"):
        CheckpointPolicy(keep=1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs")
    argv = ["run", "horizon", "--frames", "1024", "--seeds", "1", "--quiet"]
    argv += ["--logdir", str(logdir), "--variants", "rtrl", "feedforward"]
    assert main(argv) == 0
    return logdir


def test_run_writes_tensorboard_json_and_checkpoint(tiny_run):
    for variant in ("rtrl", "feedforward"):
        run = tiny_run / "horizon" / variant / "seed0"
        assert list(run.glob("events.out.tfevents.*"))
        assert (run / "metrics.jsonl").read_text().strip()
        assert [p for p in (run / "ckpt").iterdir() if p.name.isdigit()]
        result = json.loads((run / "result.json").read_text())
        assert result["frames"] >= 1024 and result["requested_frames"] == 1024
        assert result["metric"] == "success" and 0 <= result["score"] <= 1
        assert result["eval_episodes"] == get_experiment("horizon").eval_episodes
        assert result["provenance"]["versions"]["rtrl-agents"]


def test_resume_skips_finished_runs(tiny_run, capsys):
    run = tiny_run / "horizon" / "rtrl" / "seed0" / "result.json"
    before = run.read_text()
    argv = ["run", "horizon", "--frames", "1024", "--quiet", "--resume"]
    assert main([*argv, "--logdir", str(tiny_run), "--variants", "rtrl"]) == 0
    assert run.read_text() == before


def test_report_writes_markdown_and_png(tiny_run, tmp_path, capsys):
    out = tmp_path / "rep" / "report.md"
    assert main(["report", str(tiny_run), "--out", str(out)]) == 0
    text = out.read_text()
    assert "## horizon" in text and "| rtrl | 1 |" in text
    assert "| feedforward | 1 |" in text and "Chance (memoryless policy): 0.5" in text
    png = out.parent / "report_horizon.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


def test_report_sets_the_papers_numbers_beside_ours(tmp_path):
    # A Breakout result as `run` writes it (too slow to train here).
    exp = get_experiment("atari-breakout")
    for variant in exp.variants:
        for seed, score in enumerate((1.0, 3.0)):
            d = tmp_path / exp.name / variant.name / f"seed{seed}"
            d.mkdir(parents=True)
            payload = {
                "experiment": exp.name,
                "variant": variant.name,
                "seed": seed,
                "frames": 1000,
                "env_frames": 4000,
                "updates": 1,
                "metric": "return",
                "score": score,
                "eval_episodes": 2,
                "train_score": score,
                "seconds": 1.0,
                "path": str(d),
                "system": variant.system,
                "unroll": 50,
                "chance": None,
                "paper_frames": exp.paper_frames,
                "reference": list(exp.reference),
                "description": exp.description,
                "curve": [[500, 0.5], [1000, score]],
            }
            (d / "result.json").write_text(json.dumps(payload))
    paths = write_report(tmp_path)
    text = paths["markdown"].read_text()
    row = (
        "| rtrl | 2 | 1k (4k env frames) | 2 (too few seeds for an interval) | "
        "2 +- 1 | 1, 3 | 275 +- 53 @ 800M |"
    )
    assert row in text
    assert "| feedforward | 2 |" in text and "234 +- 12 @ 800M" in text
    assert "the paper's: 800M environment frames" in text
    assert "arXiv:2305.19044" in text
    assert paths[exp.name].exists()


def test_report_on_an_empty_folder_fails(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no result.json" in capsys.readouterr().err


def test_every_registered_config_is_valid():
    for exp in EXPERIMENTS.values():
        for v in exp.variants:
            assert v.steps_per_update >= 1
            if isinstance(v.config, ra.R2ACConfig):
                assert v.config.rollout_length >= 1


def _recurrent_parameters(network):
    import types

    import equinox as eqx
    import jax

    net = ra.ActorCriticNet(
        network, (5,), types.SimpleNamespace(n=3), key=jax.random.PRNGKey(0)
    )
    leaves = jax.tree.leaves(eqx.filter(net.core, eqx.is_inexact_array))
    return sum(x.size for x in leaves)


@pytest.mark.parametrize("name", ["mujoco-hopper-p", "popgym-repeatfirstmedium"])
def test_rtu_paper_arms_are_its_recipe_at_equal_parameters(name):
    # Elelimy et al. 2024: about 24k recurrent parameters per architecture behind
    # a Dense 64 torso; the paper's own online LRU; the linear RTU in the released
    # MuJoCo-P configs; orthogonal init; clipped value loss.
    arms = {v.name: v.config for v in get_experiment(name).variants}
    cells = {k: c.network.core.cell for k, c in arms.items()}
    assert cells == {"rtu-rtrl": "rtu", "lru-rtrl": "online-lru", "gru-tbptt": "gru"}
    counts = {k: _recurrent_parameters(c.network) for k, c in arms.items()}
    assert counts["rtu-rtrl"] == 24_960
    for k, n in counts.items():
        assert abs(n - 24_960) / 24_960 < 0.01, (k, n)
    assert arms["rtu-rtrl"].network.core.rtu_nonlinear == name.startswith("popgym")
    for c in arms.values():
        assert c.network.init == "orthogonal" and c.clip_value
