"""The ``--algo`` names, without importing the agents (torch, SB3), for the CLIs' ``--help``.

``mmrl_agents.factory.LEARNED`` and ``mmrl_agents.heuristics.HEURISTICS`` are the registries; these
tuples name their keys in the same order (tests/test_cli_help.py checks that they agree).
"""

from __future__ import annotations

LEARNED_NAMES = ("ppo", "a2c", "sac", "reinforce")  # SB3 (and REINFORCE) agents that learn a policy
# the papers' schedulers, the baselines, and the policies pretrained on the SyntheticMix family
HEURISTIC_NAMES = ("dus-h", "uniform", "random", "bss-h", "bss-l", "full", "dus-pretrained", "bss-pretrained")
