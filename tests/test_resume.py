"""Checkpoint and resume: env-level state, and whole train_agent.py runs that must end exactly
where an uninterrupted run ends (same agent parameters, same results.json)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from stable_baselines3 import PPO

from mmrl_agents.factory import LEARNED
from mmrl_env.envs.state import get_env_state, set_env_state
from mmrl_training import checkpoint
from mmrl_training.train_agent import main

SMALL_ENV = ["epochs=1", "batch_size=32", "val_size=50", "dataset_kwargs.n_train=192",
             "dataset_kwargs.n_val=50", "dataset_kwargs.n_test=50", "device=cpu"]


def rollout(env: gym.Env, actions: list[np.ndarray]) -> list:
    """Observations, rewards and test metrics of ``actions``, resetting after each episode."""
    out = []
    for a in actions:
        obs, reward, terminated, _, info = env.step(a)
        out.append((obs.tolist(), reward, info.get("test")))
        if terminated:
            out.append(env.reset()[0].tolist())
    return out


@pytest.mark.parametrize(("env_id", "extra"), [
    ("DUS-Synthetic", {"learner": "boosting", "learner_kwargs": {"check_every": 1}}),
    ("DUS-Synthetic", {"learner": "ogm_ge"}),
    ("BSS-Synthetic", {"curriculum": "learned", "remeasure_every": 1}),
    ("BSS-Synthetic", {"learner": "mla"}),
])
def test_env_state_continues_identically(small_kwargs, env_id, extra):
    env = gym.make(env_id, **small_kwargs, **extra)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, env.action_space.shape).astype(np.float32) for _ in range(7)]
    rollout(env, actions[:3])
    state = get_env_state(env)
    expected = rollout(env, actions[3:])
    fresh = gym.make(env_id, **small_kwargs, **extra)
    set_env_state(fresh, state)
    assert rollout(fresh, actions[3:]) == expected


def test_state_from_another_env_is_refused(small_kwargs):
    dus, bss = gym.make("DUS-Synthetic", **small_kwargs), gym.make("BSS-Synthetic", **small_kwargs)
    dus.reset(seed=0)
    with pytest.raises(ValueError, match="different env.*env: saved 'DUSEnv', this env 'BSSEnv'"):
        bss.unwrapped.set_state(dus.unwrapped.get_state())
    mla = gym.make("DUS-Synthetic", **small_kwargs, learner="mla")
    with pytest.raises(ValueError, match="learner: saved 'joint', this env 'mla'"):
        mla.unwrapped.set_state(dus.unwrapped.get_state())
    small_kwargs["dataset_kwargs"]["n_train"] = 256
    smaller = gym.make("DUS-Synthetic", **small_kwargs)
    with pytest.raises(ValueError, match="split_sizes"):
        smaller.unwrapped.set_state(dus.unwrapped.get_state())


def test_state_before_the_first_reset_restores_an_unstarted_env(small_kwargs):
    fresh, used = gym.make("DUS-Synthetic", **small_kwargs), gym.make("DUS-Synthetic", **small_kwargs)
    used.reset(seed=0)
    used.unwrapped.set_state(fresh.unwrapped.get_state())
    with pytest.raises(RuntimeError, match="reset"):
        used.unwrapped.step(np.zeros(2, np.float32))
    assert used.reset(seed=5)[0].tolist() == fresh.reset(seed=5)[0].tolist()


def write_config(tmp_path: Path, algo: str, section: dict) -> Path:
    cfg = tmp_path / f"{algo}.yaml"
    cfg.write_text(yaml.safe_dump({"default": section}))
    return cfg


def train_args(algo: str, cfg: Path | None, root: Path, total: int, env: str = "DUS-Synthetic",
               device: str = "cpu") -> list[str]:
    """The CLI arguments of a tiny run; ``--env-kwargs`` comes last, so callers can append to it.
    The agent's device is explicit (``auto`` would put SAC on a GPU where there is one): a test of
    bit-identity runs on the device it is about (CUDA: ``test_resumed_sac_on_cuda``)."""
    return ["--env", env, "--algo", algo, "-f", str(root), "-n", str(total), "--eval-episodes", "1",
            "--baselines", "uniform" if env.startswith("DUS") else "full", "--no-progress", "--device", device,
            *(["-c", str(cfg)] if cfg else []), "--env-kwargs", *SMALL_ENV]


def kill_after_first_checkpoint(monkeypatch) -> None:
    """Simulate a crash right after the first checkpoint is on disk."""
    save = checkpoint.Checkpointer.save

    def save_then_die(self, steps, **extra):
        save(self, steps, **extra)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.Checkpointer, "save", save_then_die)


def stopped_run(argv: list[str]) -> Path:
    """Run ``main(argv)``, which must stop with exit status 130 (Ctrl-C); its run directory."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 130
    return next((Path(argv[argv.index("-f") + 1]) / argv[argv.index("--algo") + 1]).iterdir())


def forbid_training(monkeypatch, cls) -> None:
    """A resumed run that should only run the final comparison fails the test if it trains."""
    learn = cls.learn
    monkeypatch.setattr(cls, "learn", lambda self, total_timesteps, **kw: learn(self, total_timesteps, **kw)
                        if total_timesteps <= 0 else pytest.fail("trained again"))


def same_parameters(a: Path, b: Path, cls) -> None:
    """Network weights and optimizer states bit for bit."""
    torch.testing.assert_close(cls.load(a).get_parameters(), cls.load(b).get_parameters(), rtol=0, atol=0)


def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


@pytest.mark.parametrize(("algo", "section", "total", "freq", "env"), [
    ("ppo", {"n_steps": 4, "batch_size": 4, "n_epochs": 2}, 16, 8, "DUS-Synthetic"),
    ("sac", {"learning_starts": 3, "batch_size": 4, "buffer_size": 100}, 10, 5, "DUS-Synthetic"),
    ("a2c", {"n_steps": 3}, 9, 6, "DUS-Synthetic"),
    ("reinforce", {"n_steps": 4}, 12, 8, "BSS-Synthetic"),
])
def test_resumed_run_matches_uninterrupted(tmp_path, monkeypatch, algo, section, total, freq, env):
    """Agent and env state survive the checkpoint (BSS case: with boosting, classifiers added)."""
    cfg = write_config(tmp_path, algo, section)
    extra = ["epochs=3", "learner=boosting", "learner_kwargs.check_every=1"] if env.startswith("BSS") else []
    straight = main([*train_args(algo, cfg, tmp_path / "a", total, env), *extra])
    kill_after_first_checkpoint(monkeypatch)
    run = stopped_run(["--save-freq", str(freq), *train_args(algo, cfg, tmp_path / "b", total, env), *extra])
    ckpt = checkpoint.latest_checkpoint(run)
    assert checkpoint.steps_of(ckpt) == freq and not (run / "results.json").exists()
    monkeypatch.undo()
    assert main(["--resume", str(run), "--no-progress"]) == run
    same_parameters(straight / "model.zip", run / "model.zip", LEARNED[algo])
    assert results(run) == results(straight)


@pytest.mark.parametrize(("algo", "section"), [
    ("ppo", {"n_steps": 4, "batch_size": 8, "n_epochs": 2}),
    ("sac", {"learning_starts": 4, "batch_size": 4, "buffer_size": 100}),
])
def test_resumed_vectorised_run_matches_uninterrupted(tmp_path, monkeypatch, algo, section):
    """--n-envs 3 on the batched vector env: the checkpoint holds all three inner runs, the SB3
    VecMonitor and the vector TensorBoard counters; resumed = uninterrupted, bit for bit."""
    cfg = write_config(tmp_path, algo, section)
    vec = ["--n-envs", "3"]
    straight = main([*vec, *train_args(algo, cfg, tmp_path / "a", 24)])
    kill_after_first_checkpoint(monkeypatch)
    run = stopped_run([*vec, "--save-freq", "12", *train_args(algo, cfg, tmp_path / "b", 24)])
    assert checkpoint.steps_of(checkpoint.latest_checkpoint(run)) == 12
    state = checkpoint.load_state(checkpoint.latest_checkpoint(run))
    assert [layer["layer"] for layer in state["env"]] == ["VecMonitor", "VecTensorBoard", "MMRLVecEnv"]
    monkeypatch.undo()
    assert main(["--resume", str(run), "--no-progress"]) == run
    same_parameters(straight / "model.zip", run / "model.zip", LEARNED[algo])
    assert results(run) == results(straight)
    assert env_scalars(run, "step/val_acc") == env_scalars(straight, "step/val_acc")


def env_scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "env"), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_ctrl_c_checkpoints_and_heuristic_run_resumes(tmp_path, monkeypatch):
    """Ctrl-C (SIGINT) mid-run: checkpoint at the next boundary, exit 130; the resumed heuristic
    run continues its env and its TensorBoard step counter as if never stopped."""
    straight = main(train_args("random", None, tmp_path / "a", 9))
    from mmrl_env.envs.base import MultimodalTrainingEnv

    step, calls = MultimodalTrainingEnv.step, []

    def step_then_ctrl_c(self, action):
        calls.append(1)
        if len(calls) == 4:
            signal.raise_signal(signal.SIGINT)
        return step(self, action)

    monkeypatch.setattr(MultimodalTrainingEnv, "step", step_then_ctrl_c)
    run = stopped_run(train_args("random", None, tmp_path / "b", 9))
    monkeypatch.undo()
    assert checkpoint.steps_of(checkpoint.latest_checkpoint(run)) == 4
    main(["--resume", str(run), "--no-progress"])
    assert results(run) == results(straight)
    assert env_scalars(run, "step/val_acc") == env_scalars(straight, "step/val_acc")
    assert [s for s, _ in env_scalars(run, "step/reward")] == list(range(1, 10))


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_ctrl_c_in_the_last_rollout_stops_and_resume_finishes(tmp_path, monkeypatch, capsys, algo):
    """Ctrl-C while the last rollout is collected: there is no later rollout boundary, so the
    checkpoint comes when training ends; then the run stops (exit 130, how to resume) instead of
    running the final comparison, and --resume runs only that comparison."""
    section = {"n_steps": 4, "batch_size": 4, "n_epochs": 1} if algo == "ppo" else \
        {"learning_starts": 2, "batch_size": 4, "train_freq": 4}
    cfg = write_config(tmp_path, algo, section)
    straight = main(train_args(algo, cfg, tmp_path / "a", 8))
    capsys.readouterr()
    from stable_baselines3.common.callbacks import BaseCallback

    from mmrl_training import agent_training

    class CtrlCInLastRollout(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == 6:  # steps 5..8 are the last rollout
                signal.raise_signal(signal.SIGINT)
            return True

    monkeypatch.setattr(agent_training, "periodic_eval", lambda cfg: [CtrlCInLastRollout()])
    run = stopped_run(train_args(algo, cfg, tmp_path / "b", 8))  # no --save-freq: the Ctrl-C asks for the checkpoint
    out = capsys.readouterr().out
    assert f"continue with: python training/train_agent.py --resume {run}" in out and "Final comparison" not in out
    assert checkpoint.steps_of(checkpoint.latest_checkpoint(run)) == 8 and not (run / "results.json").exists()
    monkeypatch.undo()
    forbid_training(monkeypatch, LEARNED[algo])
    assert main(["--resume", str(run), "--no-progress"]) == run
    assert results(run) == results(straight)
    same_parameters(straight / "model.zip", run / "model.zip", LEARNED[algo])


def test_ctrl_c_in_the_final_comparison_resumes_without_training(tmp_path, monkeypatch, capsys):
    """Without --save-freq too: training ends with a checkpoint, so a Ctrl-C while the baselines
    are scored leaves a run that --resume finishes without training again."""
    cfg = write_config(tmp_path, "ppo", {"n_steps": 4, "batch_size": 4, "n_epochs": 1})
    straight = main(train_args("ppo", cfg, tmp_path / "a", 8))
    from mmrl_training import agent_training

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(agent_training, "evaluate", ctrl_c)
    run = stopped_run(train_args("ppo", cfg, tmp_path / "b", 8))
    monkeypatch.undo()
    assert f"continue with: python training/train_agent.py --resume {run}" in capsys.readouterr().out
    forbid_training(monkeypatch, PPO)
    main(["--resume", str(run), "--no-progress"])
    assert results(run) == results(straight)


def test_resume_notices_that_the_data_changed(tmp_path, monkeypatch, capsys):
    """The run records a fingerprint of its data (data.json); a resume on changed data is refused,
    naming what changed, unless --allow-data-change."""
    rng = np.random.default_rng(0)
    data = tmp_path / "custom"
    data.mkdir()

    def write_split(split: str, n: int, shift: float) -> None:
        labels = np.arange(n) % 2
        np.savez(data / f"{split}.npz", a=(rng.normal(size=(n, 3)) + shift * labels[:, None]).astype(np.float32),
                 b=rng.normal(size=(n, 4)).astype(np.float32), labels=labels)

    write_split("train", 64, 1.0)
    write_split("test", 16, 1.0)
    argv = ["--env", "DUS-Custom", "--algo", "uniform", "-n", "4", "--save-freq", "2", "-f", str(tmp_path / "runs"),
            "--eval-episodes", "1", "--baselines", "random", "--no-progress", "--env-kwargs", f"data_root={data}",
            "epochs=1", "batch_size=16", "val_size=8", "device=cpu"]
    kill_after_first_checkpoint(monkeypatch)
    with pytest.raises(SystemExit):
        main(argv)
    monkeypatch.undo()
    run = next((tmp_path / "runs" / "uniform").iterdir())
    assert set(json.loads((run / "data.json").read_text())["files"]) == {"train.npz", "test.npz"}
    before = (data / "train.npz").stat().st_mtime_ns
    write_split("train", 64, 2.0)  # the user re-exported the training data meanwhile (same size, other values)
    os.utime(data / "train.npz", ns=(before + 10**10, before + 10**10))  # 10 s later, whatever the clock resolution
    with pytest.raises(SystemExit, match=r"the data changed since the run started \(train.npz was modified\).*"
                       "--allow-data-change"):
        main(["--resume", str(run), "--no-progress"])
    assert not (run / "results.json").exists()
    assert main(["--resume", str(run), "--no-progress", "--allow-data-change"]) == run
    assert "continuing on the new data" in capsys.readouterr().out and (run / "results.json").exists()


def test_resume_notices_changed_synthetic_settings(tmp_path, monkeypatch):
    """Synthetic data is generated: its fingerprint is the generator's settings, defaults included."""
    kill_after_first_checkpoint(monkeypatch)
    with pytest.raises(SystemExit):
        main(["--save-freq", "2", *train_args("random", None, tmp_path, 4)])
    monkeypatch.undo()
    run = next((tmp_path / "random").iterdir())
    recorded = json.loads((run / "data.json").read_text())
    assert recorded["settings"]["n_train"] == 192 and recorded["settings"]["strong_margin"] == 3.0  # a default
    recorded["settings"]["strong_margin"] = 2.0  # as if an mmrl update had changed the default
    (run / "data.json").write_text(json.dumps(recorded))
    with pytest.raises(SystemExit, match=r"strong_margin: 2.0 -> 3.0"):
        main(["--resume", str(run), "--no-progress"])


def test_resume_refuses_contradictions(tmp_path, monkeypatch):
    kill_after_first_checkpoint(monkeypatch)
    for env in ("DUS-Synthetic", "BSS-Synthetic"):
        with pytest.raises(SystemExit):
            main(["--save-freq", "2", *train_args("random", None, tmp_path, 4, env)])
    dus, bss = (next((tmp_path / "random").glob(f"{e}-Synthetic_1")) for e in ("DUS", "BSS"))
    with pytest.raises(SystemExit, match="has --env DUS-Synthetic, not BSS-Synthetic"):
        main(["--resume", str(dus), "--env", "BSS-Synthetic"])
    with pytest.raises(SystemExit, match="has --algo random, not ppo"):
        main(["--resume", str(dus), "--algo", "ppo"])
    with pytest.raises(SystemExit, match="--seed cannot change it"):
        main(["--resume", str(dus), "--seed", "3"])
    with pytest.raises(SystemExit, match="no config.yaml"):
        main(["--resume", str(tmp_path)])
    (dus / "checkpoints").rename(tmp_path / "moved")
    with pytest.raises(SystemExit, match="no intact checkpoint"):
        main(["--resume", str(dus)])
    (bss / "checkpoints").rename(dus / "checkpoints")  # a checkpoint from another env
    with pytest.raises(SystemExit, match="from env BSS-Synthetic"):
        main(["--resume", str(dus), "--no-progress"])


def test_crash_in_the_final_comparison_resumes_without_training(tmp_path, monkeypatch):
    cfg = write_config(tmp_path, "ppo", {"n_steps": 4, "batch_size": 4, "n_epochs": 1})
    straight = main(train_args("ppo", cfg, tmp_path / "a", 8))
    from mmrl_training import agent_training

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(agent_training, "final_comparison", crash)
    with pytest.raises(RuntimeError):
        main(["--save-freq", "100", *train_args("ppo", cfg, tmp_path / "b", 8)])
    monkeypatch.undo()
    run = next((tmp_path / "b" / "ppo").iterdir())
    assert checkpoint.steps_of(checkpoint.latest_checkpoint(run)) == 8  # the final checkpoint
    forbid_training(monkeypatch, PPO)
    main(["--resume", str(run), "--no-progress"])
    assert results(run) == results(straight)
    same_parameters(straight / "model.zip", run / "model.zip", PPO)


@pytest.mark.slow
def test_resume_at_default_data_sizes(tmp_path, monkeypatch):
    """The same check on the default Synthetic sizes, with OGM-GE's noise generator in play."""
    cfg = write_config(tmp_path, "ppo", {"n_steps": 8, "batch_size": 8, "n_epochs": 2})
    args = ["--algo", "ppo", "-c", str(cfg), "-n", "24", "--eval-episodes", "2", "--baselines", "dus-h",
            "--no-progress", "--env-kwargs", "epochs=2", "learner=ogm_ge", "device=cpu"]
    straight = main(["-f", str(tmp_path / "a"), *args])
    kill_after_first_checkpoint(monkeypatch)
    with pytest.raises(SystemExit):
        main(["-f", str(tmp_path / "b"), "--save-freq", "12", *args])
    monkeypatch.undo()
    run = next((tmp_path / "b" / "ppo").iterdir())
    assert checkpoint.steps_of(checkpoint.latest_checkpoint(run)) == 16  # the first rollout boundary past 12
    main(["--resume", str(run), "--no-progress"])
    same_parameters(straight / "model.zip", run / "model.zip", PPO)
    assert results(run) == results(straight)


@pytest.fixture
def deterministic_restored(monkeypatch):
    """``--deterministic`` switches process-wide flags on: put them back after the test."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    flags = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[2], flags[3]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the SAC agent on the GPU")
def test_resumed_sac_on_cuda(tmp_path, monkeypatch, deterministic_restored):
    """SAC on CUDA with --deterministic: the resumed run's weights and Adam moments match the
    uninterrupted run's. PyTorch promises bit-identity only for the same GPU, driver and library
    versions, so this asserts closeness (without --deterministic they drifted by 2.4e-5 on an
    H100, issue 13) and the run records the setting for --resume."""
    cfg = write_config(tmp_path, "sac", {"learning_starts": 3, "batch_size": 4, "buffer_size": 100})
    args = ["--deterministic", *train_args("sac", cfg, tmp_path / "a", 10, device="cuda")]
    straight = main(args)
    kill_after_first_checkpoint(monkeypatch)
    with pytest.raises(SystemExit):
        main(["--save-freq", "5", "--deterministic", *train_args("sac", cfg, tmp_path / "b", 10, device="cuda")])
    monkeypatch.undo()
    run = next((tmp_path / "b" / "sac").iterdir())
    assert yaml.safe_load((run / "config.yaml").read_text())["deterministic"] is True
    torch.use_deterministic_algorithms(False)  # the resumed run must switch it back on from its config
    main(["--resume", str(run), "--no-progress"])
    assert torch.are_deterministic_algorithms_enabled()
    a, b = LEARNED["sac"].load(straight / "model.zip").get_parameters(), LEARNED["sac"].load(run / "model.zip")
    torch.testing.assert_close(b.get_parameters(), a, rtol=1e-4, atol=1e-6)
