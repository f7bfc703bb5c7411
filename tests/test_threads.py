"""Issue 27: every entry point (gym.make, make_vec, the zoo) runs the inner training on a sane
thread count, not only the CLIs; an explicit choice is respected and the caller's is restored."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import mmrl_env
import mmrl_env.threads as threads

SMALL = {"epochs": 2, "device": "cpu", "dataset_kwargs": {"n_train": 96, "n_val": 32, "n_test": 32},
         "val_size": 32}


@pytest.fixture(autouse=True)
def torch_default(monkeypatch):
    """Pretend torch's own default here is 2 threads (whatever cores the test machine has)."""
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "torch_default_counts", lambda: frozenset({2}))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    yield
    mmrl_env.set_default_threads("auto")
    torch.set_num_threads(before)


def inner_counts(env) -> list[int]:
    """Thread counts seen by the inner trainer's predictions (validation every step, test at the end)."""
    trainer, seen = env.unwrapped.runs.inner_run if hasattr(env.unwrapped, "runs") else env.inner_run, []
    predict = trainer.predict

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return predict(*args, **kwargs)

    trainer.predict = spy
    return seen


def episode(env) -> None:
    env.reset(seed=0)
    done = False
    while not done:
        out = env.step(np.zeros(env.action_space.shape, np.float32))
        done = bool(np.all(out[2]))


def test_gym_make_trains_on_one_thread_and_restores_the_callers() -> None:
    env = gym.make("DUS-Synthetic", **SMALL)
    seen = inner_counts(env)
    episode(env)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2  # the agent's side keeps torch's setting


def test_make_vec_trains_on_one_thread() -> None:
    venv = gym.make_vec("DUS-Synthetic", num_envs=2, vectorization_mode="vector_entry_point", **SMALL)
    trainer, seen = venv.unwrapped.inner_run, []
    predict = trainer.predict
    trainer.predict = lambda *a, **k: (seen.append(torch.get_num_threads()), predict(*a, **k))[1]
    episode(venv)
    assert seen and set(seen) == {1} and torch.get_num_threads() == 2


@pytest.mark.parametrize("how, expected", [("torch", 3), ("kwarg", 4), ("default", 2), ("omp", 2)])
def test_an_explicit_choice_is_respected(monkeypatch, how: str, expected: int) -> None:
    kwargs = dict(SMALL)
    if how == "torch":
        torch.set_num_threads(3)  # the caller's own choice
    elif how == "kwarg":
        kwargs["threads"] = 4
    elif how == "default":
        mmrl_env.set_default_threads(0)  # 0: leave torch's setting alone
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
    env = gym.make("DUS-Synthetic", **kwargs)
    seen = inner_counts(env)
    episode(env)
    assert set(seen) == {expected}


@pytest.mark.parametrize("bad", [-1, 1.5, "many", True])
def test_bad_thread_settings_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="threads must be 'auto' or an integer >= 0"):
        gym.make("DUS-Synthetic", threads=bad, **SMALL)
    with pytest.raises(ValueError, match="threads must be"):
        mmrl_env.set_default_threads(bad)
