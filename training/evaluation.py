"""The one evaluation of policies on an env over the same seeds: what ``train_agent.py``'s final
comparison and ``evaluate.py`` both run (a library module: no arguments parsed, nothing printed
unless asked).

Every policy plays one episode per seed, all of its seeds as one K-run vector env
(``mmrl_training.rollout.run_episodes``); run k is seeded with ``seeds[k]`` whatever the policy
(common random numbers), so a per-seed difference between two policies is not blurred by the
noise they share. A heuristic is built on its row's own vector env, so no env is made just to
build it. The result, :class:`Evaluation`, holds one :class:`~mmrl_training.report.Record` per policy
and seed and gives the one summary (mean ± std over seeds), the paired comparison with the
baseline (``mmrl_training.stats``), the tables and the plots. Plain learner runs without RL
(``evaluate.py --learners``) give the same type from their records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import gymnasium as gym
from rich.console import Console
from tqdm import tqdm

from mmrl_agents.factory import LEARNED, make_agent
from mmrl_agents.heuristics import HEURISTICS
from mmrl_env.envs.control import control_of
from mmrl_env.envs.registration import versioned_id
from mmrl_training import report, stats
from mmrl_training.checkpoint import load_parameters
from mmrl_training.config import deep_merge
from mmrl_training.rollout import run_episodes
from mmrl_training.run_config import load_run_config

# (env id, env kwargs, seeds) -> a vector env with one run per seed and autoreset off
RunsFactory = Callable[[str, dict[str, Any], list[int]], gym.vector.VectorEnv]


def runs_env(env_id: str, env_kwargs: dict[str, Any], seeds: list[int]) -> gym.vector.VectorEnv:
    """One run per seed in one batched vector env, autoreset off (one episode each)."""
    return gym.make_vec(env_id, num_envs=len(seeds), vectorization_mode="vector_entry_point",
                        **{**env_kwargs, "autoreset_mode": "Disabled"})


def load_run(run: Path, env_id: str, algo: str | None = None, trust: bool = False) -> tuple[Any, dict[str, Any]]:
    """The agent of a finished ``train_agent.py`` run directory and the env kwargs it trained on,
    checked against ``env_id`` (and ``algo``). The agent is rebuilt from the run's config.yaml and
    given the tensors of model.zip only (``trust``: SB3's own loader, which unpickles). A directory
    that is not such a run is a ``ValueError`` saying why."""
    if not (run / "model.zip").is_file() or not (run / "config.yaml").is_file():
        raise ValueError(f"{run} has no model.zip and config.yaml: expected a finished train_agent.py run directory")
    cfg, problem = load_run_config(run / "config.yaml")
    if cfg is None:
        raise ValueError(f"{run / 'config.yaml'} is damaged ({problem}): not a usable train_agent.py run directory")
    algo = algo or cfg.agent.algo
    if versioned_id(cfg.env.id) != versioned_id(env_id) or cfg.agent.algo != algo or algo not in LEARNED:
        raise ValueError(f"{run} is a {cfg.agent.algo} run on {cfg.env.id}, not {algo} on {env_id}")
    if trust:
        return LEARNED[algo].load(run / "model.zip", device="cpu"), cfg.env.kwargs
    env = gym.make(env_id, **cfg.env.kwargs)  # the agent's spaces
    try:
        try:
            agent = make_agent(algo, env, dict(cfg.agent.hyperparams), seed=cfg.agent.seed, device="cpu")
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"{run}: {err}") from err
        load_parameters(agent, run / "model.zip")  # a CheckpointError (a ValueError) says what is wrong
    finally:
        env.close()
    return agent, cfg.env.kwargs


def display_name(spec: str) -> str:
    """A policy's row name: a heuristic's name, or ``<algo>:<run dir name>`` for ``<algo>:<run dir>``."""
    algo, sep, path = spec.partition(":")
    return f"{algo}:{Path(path).name}" if sep else spec


def with_heuristic_kwargs(name: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``env_kwargs`` with the env settings heuristic ``name`` stands for (its keys win)."""
    return deep_merge(env_kwargs, HEURISTICS[name].env_kwargs)


@dataclass(frozen=True)
class Policy:
    """One row of an evaluation: ``agent`` (anything with SB3's ``predict``), or the heuristic
    ``heuristic`` (with ``params`` and ``seed``), built on the row's vector env; ``env_kwargs``:
    the env settings the row is scored on."""

    name: str
    env_kwargs: dict[str, Any]
    agent: Any = None
    heuristic: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    @classmethod
    def of_heuristic(cls, name: str, env_kwargs: dict[str, Any], seed: int | None,
                     params: dict[str, Any] | None = None) -> Policy:
        """Heuristic ``name`` on ``env_kwargs`` plus the env settings it stands for."""
        return cls(name, with_heuristic_kwargs(name, env_kwargs), heuristic=name, params=dict(params or {}), seed=seed)


@dataclass(frozen=True)
class Evaluation:
    """Per policy one record per seed (the same seeds in the same order for every policy), and
    what follows from them: the summary, the paired comparison with ``baseline``, the reports."""

    env_id: str
    seeds: list[int]
    modalities: tuple[str, ...]
    records: dict[str, list[report.Record]]
    baseline: str
    episodes: bool = True  # policies' env episodes (False: plain learner runs, curves per epoch)

    @cached_property
    def summary(self) -> dict[str, dict[str, tuple]]:
        """policy -> column -> (mean, std) over seeds (``mmrl_training.report.summarize``)."""
        return report.summarize(self.records, self.modalities)

    @cached_property
    def comparisons(self) -> dict[str, stats.Comparison]:
        """Every policy against the baseline, paired over seeds."""
        return stats.compare(report.per_seed(self.records), self.baseline)

    @property
    def rewards(self) -> dict[str, str]:
        return report.rewards_of(self.records)

    @property
    def diverged(self) -> dict[str, int]:
        """policy -> how many of its episodes diverged (non-finite inner loss)."""
        return {name: sum(r.diverged for r in recs) for name, recs in self.records.items()}

    def to_json(self) -> dict[str, Any]:
        """The summary as plain data (``results.json``; NaN where every seed diverged)."""
        first = next(iter(self.records.values()), [])
        return {"env": self.env_id, "seeds": self.seeds, "reward": first[0].reward if first else None,
                "baseline": self.baseline, "results": self.summary, "diverged": self.diverged}

    def write(self, out: Path, title: str) -> list[Path]:
        """results.md (the summary and the paired table under ``title``), results.csv,
        comparison.csv, intervals.png and the plots, into ``out``; returns the files."""
        n, summary, comparisons = len(self.seeds), self.summary, self.comparisons
        table = report.markdown_table(summary, self.modalities, n, self.rewards)
        paired = report.paired_markdown(comparisons, self.baseline, n)
        (out / "results.md").write_text(f"# {title}\n\n{table}\n{paired}")
        report.write_csv(out / "results.csv", summary, self.modalities, n)
        report.write_comparison_csv(out / "comparison.csv", comparisons, self.baseline)
        files = [out / "results.md", out / "results.csv", out / "comparison.csv",
                 report.plot_intervals(out / "intervals.png", comparisons, self.baseline,
                                       f"{self.env_id}: test fused accuracy over {n} seeds")]
        if self.episodes:
            files += report.plot_episodes(out, self.records, self.env_id)
        else:  # learners: epoch 1 is after the first epoch
            files.append(report.plot_validation(out / "val_acc.png", self.records, "epoch (after)",
                                                f"{self.env_id}: validation accuracy", 1))
        return files

    def print_tables(self, title: str) -> None:
        """The summary and the paired table in the terminal; a line per policy that diverged."""
        n, diverged = len(self.seeds), self.diverged
        console = Console(width=max(120, Console().width))
        console.print(report.terminal_table(self.summary, self.modalities, n, title, self.rewards, diverged))
        console.print(report.paired_terminal(self.comparisons, self.baseline, n, self.env_id))
        for name, count in diverged.items():
            if count:
                print(f"{name}: the inner training diverged in {count} of {n} episode(s) (non-finite loss); "
                      "its test metrics are over the other episodes, 'diverged' where there are none")


def evaluate(env_id: str, policies: Sequence[Policy], seeds: Sequence[int], baseline: str | None = None,
             make_runs: RunsFactory = runs_env, check: Callable[[Policy, Any, Any], None] | None = None,
             progress: bool = False) -> Evaluation:
    """Every policy for one episode per seed on ``env_id`` (one vector env per policy from
    ``make_runs``: e.g. Ray actors, or errors worded for a CLI); ``baseline``: the row the others
    are compared with (default: the first). ``check(policy, agent, venv)`` may refuse a row
    before it plays (e.g. spaces that do not fit its agent)."""
    seeds = [int(s) for s in seeds]
    if not policies:
        raise ValueError("evaluate needs at least one policy")
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise ValueError(f"two policies share a row name: {names}")
    baseline = names[0] if baseline is None else baseline
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not among the policies {names}")
    records: dict[str, list[report.Record]] = {}
    modalities: tuple[str, ...] = ()
    for policy in tqdm(policies, desc="policies", disable=not progress):
        venv = make_runs(env_id, policy.env_kwargs, seeds)
        try:
            agent = policy.agent
            if agent is None:
                agent = make_agent(policy.heuristic or policy.name, venv, policy.params, seed=policy.seed)
            if check is not None:
                check(policy, agent, venv)
            modalities = control_of(venv).modalities
            episodes = run_episodes(agent, venv, seeds)
        finally:
            venv.close()
        reward = report.reward_of(policy.env_kwargs)
        records[policy.name] = [report.episode_record(e, modalities, reward) for e in episodes]
    return Evaluation(env_id, seeds, modalities, records, baseline)
