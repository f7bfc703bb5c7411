"""One inner training run as a Gymnasium ``Env``: the K = 1 view of the vector env.

Episode = one inner training run; step = one decision interval (the method says how long
and what the action controls); observation = CMD + progress + previous action (+ extras);
reward = validation gain. All of it lives in
:class:`~mmrl_env.envs.vector.MultimodalTrainingVectorEnv`; this class runs it with one
run and no autoreset, so ``gym.make("DUS-…")`` and ``gym.make_vec(...)`` share one code path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym

from mmrl_env.envs.vector import MultimodalTrainingVectorEnv


class MultimodalTrainingEnv(gym.Env):
    """Base of the single-run envs. Keyword arguments (all optional) choose data, learner,
    sizes and reward:

    dataset / dataset_kwargs: a registered dataset and its loader's arguments.
    learner / learner_kwargs: inner dynamics (``joint``; more in ``mmrl_env.learners``).
    batch_size, epochs, optim: the inner run (optim: dict of ``OptimConfig`` fields).
    val_size: size of the fixed validation subset the reward is measured on (None = all).
    reward: ``acc`` (100·Δ accuracy, default), ``f1`` (100·Δ macro-F1), ``loss`` (−Δ val loss),
        ``final`` (100·accuracy at the last step only), ``auc`` (100·accuracy every step).
    cmd_kwargs: the CMD monitor's settings, ``{"mode": "mean" | "ema", "ema": 0.99}``.
    obs_extras: optional observation extras (``val_acc``).
    obs_norm: ``none`` (default, the v0 observation: raw ŝ ∈ [0, 1]) or ``chance``: every score a
        policy reads (ŝ, hence d, and the ``val_acc`` extras) becomes (s − 1/C)/(1 − 1/C), the
        fraction of the way from chance to certainty for the run's class count C, in [−1, 1]
        (0 before it is first measured), so the observation's scale no longer depends on the
        class count, the input sizes or the dataset (what a policy trained on other data needs).
    device: ``auto`` (CUDA when it helps; see ``mmrl_env.inner_run.build``), ``cpu`` or ``cuda[:i]``.
    engine: ``auto`` | ``batched`` | ``sequential`` (see ``mmrl_env.inner_run.build``).
    threads: torch CPU threads of the inner training (``"auto"``: 1 on a CPU device unless you
        chose a count; an int; 0 = torch's setting untouched; see ``mmrl_env.threads``).

    Sub-settings of a component are always a nested dict named ``<component>_kwargs``
    (``optim`` too); the old flat names (``cmd_mode``, ``cmd_ema``, ...) were removed before 1.0:
    ``gym.make`` refuses them naming the replacement (``REMOVED_KWARGS``).
    """

    metadata = {"render_modes": []}
    method: ClassVar[str]
    vector_class: ClassVar[type[MultimodalTrainingVectorEnv[Any]]]
    runs: MultimodalTrainingVectorEnv[Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.method = cls.vector_class.method

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        # the method's vector env takes keyword arguments alone (its action map is its own)
        make_runs: Callable[..., MultimodalTrainingVectorEnv[Any]] = self.vector_class
        self.runs = make_runs(num_envs=1, autoreset_mode="Disabled", **kwargs)
        self.action_space = self.runs.single_action_space
        self.observation_space = self.runs.single_observation_space
        self.control = self.runs.control

    @property
    def inner_run(self) -> Any:
        """The inner run (an :class:`~mmrl_env.inner_run.run.InnerRun` of K = 1), for inspection."""
        return self.runs.inner_run

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.runs.modalities)

    @property
    def layout(self) -> Any:
        """The observation layout (also ``control.layout``)."""
        return self.runs.layout

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, infos = self.runs.reset_runs(seed=None if seed is None else [seed])
        return obs[0], infos[0]

    def step(self, action: Any):
        self.runs.check_open("step")
        if self.runs.ended[0]:  # the vector env's own refusal names run indices; a single run needs none
            raise RuntimeError("this inner training run has ended (terminated=True); call reset() to start another")
        obs, rewards, terminated, truncated, infos = self.runs.step_runs([action])  # checked there, once
        return obs[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), infos[0]

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Full metrics (acc, f1, map) of the current inner model, fused and per modality."""
        return self.runs.evaluate_runs(split)[0]

    def get_state(self) -> dict[str, Any]:
        """The run's full state (see ``MultimodalTrainingVectorEnv.get_state``)."""
        return self.runs.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.runs.set_state(state)

    def close(self) -> None:
        self.runs.close()
        super().close()

