import json
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mmrl_agents.factory import LEARNED, algo_names
from mmrl_agents.heuristics import HEURISTICS
from mmrl_training.train_agent import main

SMALL_ENV = ["epochs=1", "batch_size=32", "val_size=50", "dataset_kwargs.n_train=192",
             "dataset_kwargs.n_val=50", "dataset_kwargs.n_test=50", "device=cpu"]


def tags(path: Path) -> dict[str, list[str]]:
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc.Tags()


def test_ppo_run_writes_agent_config_and_tensorboard(tmp_path, capsys):
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text(yaml.safe_dump({"DUS-Synthetic": {"n_timesteps": 16, "n_steps": 8, "batch_size": 8, "n_epochs": 1}}))
    run = main(["--env", "DUS-Synthetic", "--algo", "ppo", "-c", str(cfg), "-f", str(tmp_path / "runs"),
                "--eval-episodes", "1", "--eval-freq", "8", "--no-progress", "--env-kwargs", *SMALL_ENV])
    assert (run / "model.zip").exists() and "train_agent" in (run / "command.txt").read_text()
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["hyperparams"]["n_steps"] == 8 and resolved["env_kwargs"]["epochs"] == 1
    env_tags = tags(run / "env")
    for tag in ("step/n/audio", "step/n/video", "step/s_hat/audio", "step/d/video", "step/reward",
                "step/val_acc", "step/val_acc_modality/video", "episode/return"):
        assert tag in env_tags["scalars"], tag
    assert not any(t.startswith("episode/test/") for t in env_tags["scalars"])  # only with --log-test
    assert {"actions/audio", "actions/video"} <= set(env_tags["histograms"])
    sb3_tags = tags(run / "sb3_1")["scalars"]
    assert "rollout/ep_rew_mean" in sb3_tags and "eval/mean_reward" in sb3_tags
    results = json.loads((run / "results.json").read_text())["results"]
    assert set(results) == {"ppo", "dus-h", "uniform", "dus-pretrained", "random"}  # the pretrained policy too
    printed = capsys.readouterr().out
    assert "Final comparison" in printed and "dus-h" in printed and "uniform" in printed
    assert 0.0 <= results["dus-h"]["fused_acc"][0] <= 1.0
    # the table and results.json say which reward the return is; the plots evaluate.py writes
    assert "reward='acc'" in " ".join(printed.split())
    assert json.loads((run / "results.json").read_text())["reward"] == "acc"
    for name in ("val_acc.png", "actions.png", "cmd.png"):
        assert (run / name).read_bytes()[:4] == b"\x89PNG", name


def test_heuristic_run_logs_the_same_tags(tmp_path):
    run = main(["--env", "DUS-Synthetic", "--algo", "dus-h", "-n", "12", "-f", str(tmp_path),
                "--eval-episodes", "1", "--baselines", "uniform", "--no-progress", "--env-kwargs", *SMALL_ENV])
    assert json.loads((run / "model.json").read_text())["heuristic"] == "dus-h"
    assert {"step/n/audio", "step/d/video", "episode/return"} <= set(tags(run / "env")["scalars"])
    assert not any(t.startswith("episode/test/") for t in tags(run / "env")["scalars"])
    assert json.loads((run / "results.json").read_text())["results"]["dus-h"]["fused_acc"]  # the final table


def test_a_run_builds_no_env_only_to_read_settings(tmp_path, monkeypatch):
    """One run builds try_build's env, the training env and one K-run vector env per row of the
    final comparison, nothing else: the method comes from the env spec, and each heuristic is
    built on its row's own vector env (it was 4 + N + rows: also an env to read the method and
    the modalities, and one per baseline to build the heuristic)."""
    from mmrl_env.envs import registration

    built = []

    def counting(name: str):
        real = getattr(registration, name)

        def counted(*args, **kwargs):
            built.append(name)
            return real(*args, **kwargs)
        return counted

    for name in ("make", "make_vec"):  # gym.make resolves the entry point on every call
        monkeypatch.setattr(registration, name, counting(name))
    run = main(["--env", "DUS-Synthetic", "--algo", "dus-h", "-n", "2", "-f", str(tmp_path), "--eval-episodes", "2",
                "--baselines", "uniform,random", "--no-progress", "--env-kwargs", *SMALL_ENV])
    assert built == ["make", "make", "make_vec", "make_vec", "make_vec"]
    assert set(json.loads((run / "results.json").read_text())["results"]) == {"dus-h", "uniform", "random"}


@pytest.mark.parametrize("n_envs", [1, 2])
def test_log_test_adds_the_training_episodes_test_metrics(tmp_path, n_envs):
    """--log-test: each training episode's test metrics go to TensorBoard (episode/test/...), single or batched env."""
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text(yaml.safe_dump({"DUS-Synthetic": {"n_timesteps": 8, "n_steps": 4, "batch_size": 4, "n_epochs": 1}}))
    run = main(["--env", "DUS-Synthetic", "--algo", "ppo", "-c", str(cfg), "-f", str(tmp_path), "--log-test",
                "--n-envs", str(n_envs), "--eval-episodes", "1", "--eval-freq", "0", "--baselines", "uniform",
                "--no-progress", "--env-kwargs", *SMALL_ENV])
    assert {"episode/test/fused_acc", "episode/test/video_acc"} <= set(tags(run / "env")["scalars"])
    assert yaml.safe_load((run / "config.yaml").read_text())["log_test"] is True


@pytest.mark.parametrize("algo", ["a2c", "sac", "reinforce"])
def test_other_agents_train(tmp_path, algo):
    cfg = tmp_path / "c.yaml"
    extra = {"sac": {"learning_starts": 4, "batch_size": 4}, "a2c": {"n_steps": 4}, "reinforce": {"n_steps": 6}}[algo]
    cfg.write_text(yaml.safe_dump({"default": {"n_timesteps": 8, **extra}}))
    run = main(["--env", "DUS-Synthetic", "--algo", algo, "-c", str(cfg), "-f", str(tmp_path),
                "--eval-episodes", "1", "--baselines", "uniform", "--no-progress", "--env-kwargs", *SMALL_ENV])
    assert (run / "model.zip").exists()


def test_bad_cli_input_is_explained(tmp_path):
    with pytest.raises(SystemExit, match="valid algos"):
        main(["--algo", "nope", "-f", str(tmp_path)])
    with pytest.raises(SystemExit, match="valid ids"):
        main(["--env", "DUS-Nope", "-f", str(tmp_path)])
    with pytest.raises(SystemExit, match="does not apply"):
        main(["--env", "BSS-Synthetic", "--algo", "dus-h", "-f", str(tmp_path), "--no-progress"])


@pytest.mark.parametrize("algo", ["ppo", "bss-l"])
def test_bss_runs_like_dus(tmp_path, algo):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"default": {"n_timesteps": 4, **({"n_steps": 4, "batch_size": 4}
                                                                     if algo == "ppo" else {})}}))
    run = main(["--env", "BSS-Synthetic", "--algo", algo, "-c", str(cfg), "-f", str(tmp_path), "--eval-freq", "0",
                "--eval-episodes", "1", "--baselines", "full", "--no-progress", "--env-kwargs", *SMALL_ENV])
    env_tags = set(tags(run / "env")["scalars"])
    assert {"step/lambda", "step/subset_size", "step/balance/score", "step/balance/similarity",
            "step/balance/loss", "step/s_hat/video"} <= env_tags
    results = json.loads((run / "results.json").read_text())["results"]
    assert set(results) == {algo, "full"}


# Every --algo on both env families, through the CLI with the SHIPPED config (only the budget is cut):
# a2c's shipped config once crashed writing config.yaml (SB3 put an RMSprop class into its policy_kwargs).
TINY = {"ppo": ["n_steps:4", "batch_size:4", "n_epochs:1"], "a2c": ["n_steps:4"], "reinforce": ["n_steps:4"],
        "sac": ["learning_starts:2", "batch_size:4", "train_freq:2", "gradient_steps:1"]}
EVERY_ALGO = [(env, algo) for env in ("DUS-Synthetic", "BSS-Synthetic") for algo in algo_names()
              if algo in LEARNED or not HEURISTICS[algo].methods or env.split("-")[0] in HEURISTICS[algo].methods]


@pytest.mark.parametrize(("env", "algo"), EVERY_ALGO)
def test_every_algo_runs_from_the_cli(tmp_path, env, algo):
    params = ["-params", *TINY[algo]] if algo in LEARNED else []
    run = main(["--env", env, "--algo", algo, "-n", "4", *params, "--n-envs", "2" if algo in LEARNED else "1",
                "-f", str(tmp_path), "--eval-episodes", "1", "--eval-freq", "0", "--baselines", "random",
                "--no-progress", "--env-kwargs", *SMALL_ENV])
    saved = yaml.safe_load((run / "config.yaml").read_text())  # plain YAML: a class in it would not load here
    assert saved["algo"] == algo and saved["env"] == env
    assert (run / ("model.zip" if algo in LEARNED else "model.json")).is_file()
    assert set(json.loads((run / "results.json").read_text())["results"]) == {algo, "random"}
    assert [p.name for p in (tmp_path / algo).iterdir()] == [run.name]  # no other (empty) run directory


def test_policy_classes_are_given_by_name_and_the_config_stays_plain(small_kwargs):
    """rl-zoo writes ``optimizer_class=RMSpropTFLike`` as Python; here it is a name, resolved when
    the agent is built, and the caller's hyperparameters are left as they were (SB3 writes into them)."""
    import gymnasium as gym
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
    from torch import nn

    from mmrl_agents.factory import make_agent

    hp = {"n_steps": 4, "policy_kwargs": {"net_arch": [8], "optimizer_class": "RMSpropTFLike",
                                          "activation_fn": "nn.ReLU"}}
    before = yaml.safe_dump(hp)
    env = gym.make("DUS-Synthetic", **small_kwargs)
    agent = make_agent("a2c", env, hp, seed=0, device="cpu")
    assert isinstance(agent.policy.optimizer, RMSpropTFLike)
    assert any(isinstance(m, nn.ReLU) for m in agent.policy.modules())
    assert yaml.safe_dump(hp) == before
    plain = make_agent("a2c", env, {"policy_kwargs": {"net_arch": [8]}}, seed=0, device="cpu")
    assert type(plain.policy.optimizer).__name__ == "RMSprop"  # A2C's own default still applies
    env.close()


def test_vector_run_logs_the_allocation_over_runs_against_timesteps(tmp_path):
    """Issue 27: env/step/* was run 0 only, at the vector step. Now every tag is the mean over the
    K runs at the agent's timestep (SB3's x axis), the allocation's spread is step_std/*, and each
    periodic evaluation draws the deterministic policy's schedule (eval/schedule, next to
    eval/mean_reward)."""
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text(yaml.safe_dump({"DUS-Synthetic": {"n_timesteps": 8, "n_steps": 2, "batch_size": 2, "n_epochs": 1}}))
    run = main(["--env", "DUS-Synthetic", "--algo", "ppo", "-c", str(cfg), "-f", str(tmp_path / "runs"),
                "--n-envs", "2", "--eval-episodes", "1", "--baselines", "uniform", "--eval-freq", "4",
                "--periodic-eval-episodes", "1",
                "-tb", str(tmp_path / "tb"), "--no-progress", "--env-kwargs", *SMALL_ENV])
    tb = Path(yaml.safe_load((run / "config.yaml").read_text())["tensorboard_log"])  # the run's own -tb folder
    assert tb.parent.parent == tmp_path / "tb"
    acc = EventAccumulator(str(tb / "env"), size_guidance={"scalars": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("step/n/audio")] == [2, 4, 6, 8]  # timesteps: 4 vector steps x 2 runs
    assert {"step_std/n/audio", "step_std/n/video", "step_std/reward"} <= scalars
    assert "step/reward_mean" not in scalars and not any("TimeLimit" in t for t in scalars)
    n = [e.value for e in acc.Scalars("step/n/audio")]
    spread = [e.value for e in acc.Scalars("step_std/n/audio")]
    assert all(v >= 0 for v in spread) and all(v > 0 for v in n)
    sb3 = EventAccumulator(str(tb / "sb3_1"), size_guidance={"images": 0, "scalars": 0})
    sb3.Reload()
    assert [e.step for e in sb3.Images("eval/schedule")] == [e.step for e in sb3.Scalars("eval/mean_reward")] == [4, 8]
