"""Heuristic policies by ``--algo`` name (the papers' schedulers and simple baselines)."""

from __future__ import annotations

from agents.heuristics.base import HeuristicPolicy
from agents.heuristics.bss import FullDataPolicy, LearnedCurriculumPolicy, PacingPolicy
from agents.heuristics.dus import DUSHeuristicPolicy
from agents.heuristics.generic import RandomPolicy, UniformPolicy
from agents.heuristics.pretrained import BSSPretrainedPolicy, DUSPretrainedPolicy

HEURISTICS: dict[str, type[HeuristicPolicy]] = {
    p.name: p for p in (DUSHeuristicPolicy, UniformPolicy, RandomPolicy, PacingPolicy, LearnedCurriculumPolicy,
                        FullDataPolicy, DUSPretrainedPolicy, BSSPretrainedPolicy)
}

__all__ = ["HEURISTICS", "HeuristicPolicy"]
