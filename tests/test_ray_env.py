"""Inner runs in Ray actors (``RayVectorEnv``, ``--ray``): the same episodes as the in-process
vector env for the same seeds, a killed actor replaced with its episodes truncated while
training goes on, and checkpoints that resume. The tests that start Ray are slow (a local
cluster of 2 CPUs, ``ray.init(num_cpus=2)``) and skip without the optional extra; the
default suite only checks what needs no cluster."""

from __future__ import annotations

import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest

from mmrl_env.envs.ray_vector import FAULT_KEY, RayVectorEnv, split_runs
from mmrl_env.extras import MissingExtraError
from mmrl_training import evaluate as evaluate_cli
from mmrl_training.train_agent import main

EXTRA = "the optional extra: pip install -e '.[ray]'"


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason=EXTRA)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    if started:
        ray.shutdown()


def actions(step: int, k: int) -> np.ndarray:
    return np.random.default_rng(100 * step + 7).uniform(-1, 1, (k, 2)).astype(np.float32)


def in_process(small_kwargs: dict, k: int) -> gym.vector.VectorEnv:
    return gym.make_vec("DUS-Synthetic", num_envs=k, vectorization_mode="vector_entry_point", **small_kwargs)


# --- no cluster -----------------------------------------------------------------------
def test_runs_are_spread_evenly_over_the_actors():
    assert split_runs(4, 2) == [2, 2] and split_runs(5, 2) == [3, 2] and split_runs(3, 3) == [1, 1, 1]
    with pytest.raises(ValueError, match="at least one run"):
        split_runs(2, 3)


def test_without_ray_the_extra_is_named(monkeypatch, small_kwargs):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'mmrl\[ray\]'"):
        RayVectorEnv("DUS-Synthetic", 2, 1, small_kwargs)
    with pytest.raises(SystemExit, match=r"--ray: .*pip install -e '\.\[ray\]'"):
        main(["--ray", "--n-envs", "2", "-f", "unused"])


@pytest.mark.parametrize(("argv", "message"), [
    (["--ray-workers", "2"], "--ray-workers applies to --ray only"),
    (["--ray", "--ray-workers", "0"], "--ray-workers must be >= 1"),
    (["--ray", "--ray-workers", "3", "--n-envs", "2"], "every actor hosts at least one run"),
    (["--ray", "--n-envs", "2", "--vec-env", "dummy"], "the Ray actors host the batched vector env"),
    (["--ray", "--algo", "uniform"], "--ray is for learned agents"),
])
def test_bad_ray_flags_are_refused(tmp_path, argv, message):
    pytest.importorskip("ray", reason=EXTRA)  # else the missing extra is reported first
    with pytest.raises(SystemExit, match=message):
        main([*argv, "-f", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_evaluate_refuses_ray_for_learners(tmp_path):
    pytest.importorskip("ray", reason=EXTRA)
    with pytest.raises(SystemExit, match="--ray applies to --policies"):
        evaluate_cli.main(["--learners", "joint", "--ray", "--out", str(tmp_path / "e")])


# --- a local cluster (slow) -------------------------------------------------------------
@pytest.mark.slow
def test_actors_play_what_the_in_process_env_plays(ray_cluster, small_kwargs):
    """2 actors x 2 runs = one 4-run env: env i is run i % 2 of actor i // 2 and gets seed s + i."""
    renv, ref = RayVectorEnv("DUS-Synthetic", 4, 2, small_kwargs), in_process(small_kwargs, 4)
    assert renv.runs_per_actor == [2, 2] and renv.spec.id == ref.spec.id
    assert renv.single_observation_space == ref.single_observation_space
    assert len({ray_cluster.get(a.pid.remote()) for a in renv.actors}) == 2  # two processes
    o1, _ = renv.reset(seed=5)
    o2, _ = ref.reset(seed=5)
    np.testing.assert_allclose(o1, o2, atol=1e-6)
    ended = 0
    for step in range(12):  # past the first autoreset (an episode is 4 steps here)
        a = actions(step, 4)
        obs, rew, term, trunc, infos = renv.step_runs(a)
        obs2, rew2, term2, trunc2, infos2 = ref.step_runs(a)
        np.testing.assert_allclose(obs, obs2, atol=1e-5, err_msg=f"step {step}")
        np.testing.assert_allclose(rew, rew2, atol=1e-4)
        assert term.tolist() == term2.tolist() and not trunc.any()
        for i in np.flatnonzero(term):
            ended += 1
            np.testing.assert_allclose(infos[i]["final_obs"], infos2[i]["final_obs"], atol=1e-5)
            for name, value in infos2[i]["final_info"]["test"].items():
                assert infos[i]["final_info"]["test"][name] == pytest.approx(value, abs=1e-4)
    assert ended >= 4
    # per-env seeds (a list) and resetting a subset reach the right actor and run
    o1, _ = renv.reset_runs(seed=[21, 22], runs=[1, 2])
    o2, _ = ref.reset_runs(seed=[21, 22], runs=[1, 2])
    np.testing.assert_allclose(o1, o2, atol=1e-5)
    renv.close()


@pytest.mark.slow
def test_a_killed_actor_is_replaced_and_its_runs_end_truncated(ray_cluster, small_kwargs):
    renv, ref = RayVectorEnv("DUS-Synthetic", 2, 2, small_kwargs), in_process(small_kwargs, 2)
    renv.reset(seed=3)
    ref.reset(seed=3)
    before, *_ = renv.step_runs(actions(0, 2))
    ref.step_runs(actions(0, 2))
    pid = ray_cluster.get(renv.actors[1].pid.remote())
    ray_cluster.kill(renv.actors[1], no_restart=False)  # mid-episode: Ray restarts it
    with pytest.warns(RuntimeWarning, match="Ray actor 1 .* died"):
        obs, rew, term, trunc, infos = renv.step_runs(actions(1, 2))
    _, rew2, *_ = ref.step_runs(actions(1, 2))
    assert ray_cluster.get(renv.actors[1].pid.remote()) != pid and renv.restarts == [0, 1]
    assert trunc.tolist() == [False, True] and not term.any()
    assert rew[1] == 0.0 and rew[0] == pytest.approx(rew2[0], abs=1e-4)  # actor 0 went on undisturbed
    assert infos[1]["final_info"][FAULT_KEY] and "val_acc" in infos[1]["final_info"]
    np.testing.assert_allclose(infos[1]["final_obs"], before[1])  # the last observation the agent saw
    assert obs[1][renv.control.layout.progress] == 0.0  # a new run's first observation
    obs, _, _, trunc, _ = renv.step_runs(actions(2, 2))  # and it trains on
    assert not trunc.any() and obs[1][renv.control.layout.progress] > 0
    renv.close()


@pytest.mark.slow
def test_ppo_training_finishes_when_an_actor_dies(ray_cluster, small_kwargs):
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecMonitor

    from mmrl_agents.vec_env import MMRLVecEnv

    renv = RayVectorEnv("DUS-Synthetic", 2, 2, small_kwargs)

    class KillOnce(BaseCallback):
        truncated: list[int] = []

        def _on_step(self) -> bool:
            if self.num_timesteps == 6:
                ray_cluster.kill(renv.actors[0], no_restart=False)
            self.truncated += [k for k, info in enumerate(self.locals["infos"]) if info.get("TimeLimit.truncated")
                               and info.get(FAULT_KEY)]
            return True

    agent = PPO("MlpPolicy", VecMonitor(MMRLVecEnv(renv)), n_steps=4, batch_size=4, n_epochs=1, seed=0)
    callback = KillOnce()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        agent.learn(16, callback=callback)
    assert agent.num_timesteps == 16 and renv.restarts == [1, 0] and callback.truncated == [0]
    renv.close()


@pytest.mark.slow
def test_state_round_trip(ray_cluster, small_kwargs):
    half = {"num_cpus": 0.4}  # three envs of 2 actors open at once on a cluster of 2 CPUs
    renv = RayVectorEnv("DUS-Synthetic", 3, 2, small_kwargs, **half)
    renv.reset(seed=9)
    renv.step_runs(actions(0, 3))
    state = renv.get_state()
    assert [s["identity"]["runs"] for s in state["actors"]] == [2, 1]
    after = [renv.step_runs(actions(s, 3))[:2] for s in (1, 2)]
    other = RayVectorEnv("DUS-Synthetic", 3, 2, small_kwargs, **half)
    other.set_state(state)
    for (obs, rew), s in zip(after, (1, 2), strict=True):
        o, r, *_ = other.step_runs(actions(s, 3))
        np.testing.assert_array_equal(o, obs)
        np.testing.assert_array_equal(r, rew)
    one_actor = RayVectorEnv("DUS-Synthetic", 3, 1, small_kwargs, **half)
    with pytest.raises(ValueError, match="runs per Ray actor"):
        one_actor.set_state(state)
    for env in (renv, other, one_actor):
        env.close()


@pytest.mark.slow
def test_ray_run_resumes_to_the_uninterrupted_result(ray_cluster, tmp_path, monkeypatch):
    """train_agent.py --ray: a run stopped after its first checkpoint and resumed ends where an
    uninterrupted Ray run ends (agent weights and the final comparison, also played on actors)."""
    import yaml
    from test_resume import kill_after_first_checkpoint, results, same_parameters, train_args, write_config

    from mmrl_agents.factory import LEARNED
    from mmrl_training.checkpoint import latest_checkpoint, load_state, steps_of

    cfg = write_config(tmp_path, "ppo", {"n_steps": 4, "batch_size": 4, "n_epochs": 1})
    ray_flags = ["--ray", "--ray-workers", "2", "--n-envs", "2", "--eval-freq", "0"]
    straight = main([*ray_flags, *train_args("ppo", cfg, tmp_path / "a", 16)])
    kill_after_first_checkpoint(monkeypatch)
    with pytest.raises(SystemExit):
        main([*ray_flags, "--save-freq", "8", *train_args("ppo", cfg, tmp_path / "b", 16)])
    run = next((tmp_path / "b" / "ppo").iterdir())
    state = load_state(latest_checkpoint(run))
    assert steps_of(latest_checkpoint(run)) == 8 and state["env"][-1]["state"]["venv"]["layout"] == [1, 1]
    assert yaml.safe_load((run / "config.yaml").read_text())["ray_workers"] == 2
    monkeypatch.undo()
    assert main(["--resume", str(run), "--no-progress"]) == run
    same_parameters(straight / "model.zip", run / "model.zip", LEARNED["ppo"])
    assert results(run) == results(straight)
