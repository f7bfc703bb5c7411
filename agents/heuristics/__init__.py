"""Heuristic policies by ``--algo`` name (the papers' schedulers and simple baselines)."""

from __future__ import annotations

from mmrl_agents.heuristics.base import HeuristicPolicy
from mmrl_agents.heuristics.bss import FullDataPolicy, LearnedCurriculumPolicy, PacingPolicy
from mmrl_agents.heuristics.dus import DUSHeuristicPolicy
from mmrl_agents.heuristics.generic import RandomPolicy, UniformPolicy
from mmrl_agents.heuristics.pretrained import BSSPretrainedPolicy, DUSPretrainedPolicy

HEURISTICS: dict[str, type[HeuristicPolicy]] = {
    p.name: p for p in (DUSHeuristicPolicy, UniformPolicy, RandomPolicy, PacingPolicy, LearnedCurriculumPolicy,
                        FullDataPolicy, DUSPretrainedPolicy, BSSPretrainedPolicy)
}

__all__ = ["HEURISTICS", "HeuristicPolicy"]
