"""Agents: the SB3 factory, REINFORCE, and heuristic policies of the same envs."""
