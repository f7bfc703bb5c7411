"""``--ray [ADDRESS]`` and ``--ray-workers N`` of the CLIs: the inner runs in Ray actors.

Kept apart from the CLIs' own modules so that each CLI adds the flags and one call
(:func:`add_flags`, :func:`use`). :func:`use` connects to the cluster and returns the number of
actors per vector env, which the CLI passes on: the vector envs it makes — the training env and
the one-episode-per-seed envs of a comparison (``training.run_config.make_runs``) — are then
:class:`~mmrl_env.envs.ray_vector.RayVectorEnv` s over that many actors. No state is kept here.
Without ``--ray`` nothing here imports ``ray``.
"""

from __future__ import annotations

import argparse
from typing import Any

import gymnasium as gym

from mmrl_env.envs.ray_vector import RayVectorEnv, import_ray, init_ray
from training.cli_errors import ENV_ERRORS, UsageError, message_of

LOCAL = "local"  # --ray without an address: a local cluster started by this process


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
                   help="run the inner runs in Ray actors: on the cluster at ADDRESS (what 'ray start --head' "
                   "prints, or 'auto'), or without ADDRESS on a local cluster of --ray-workers CPUs; needs the "
                   "optional extra: pip install -e '.[ray]' (README: Scaling out with Ray)")
    p.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="with --ray: Ray actors (default 1), each hosting an equal share of the envs as one batched "
                   "engine, on a GPU of its own when the cluster has them")


def check_flags(address: str | None, workers: int | None) -> None:
    """Bad combinations, and a missing ``ray``, refused before anything starts."""
    from training.validate import check_range  # imports torch: not before the CLIs have parsed (--help)

    if address is None:
        if workers is not None:
            raise UsageError("--ray-workers applies to --ray only")
        return
    check_range("--ray-workers", workers, 1)
    try:
        import_ray()
    except ImportError as err:
        raise UsageError(f"--ray: {message_of(err)}") from err


def use(address: str | None, workers: int | None, refuse: str | None = None) -> int | None:
    """Connect to (or start) the cluster; returns the actors per vector env (``None``: no
    ``--ray``, the envs stay in this process). ``refuse``: the reason ``--ray`` does not apply
    to this invocation (it is then refused)."""
    check_flags(address, workers)
    if address is not None and refuse:
        raise UsageError(refuse)
    if address is None:
        return None
    workers = workers or 1
    try:
        init_ray(None if address == LOCAL else address, num_cpus=workers)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise UsageError(f"--ray {address}: cannot connect to a Ray cluster there ({message_of(err)})") from err
    return workers


def make_vec_env(env_id: str, num_envs: int, kwargs: dict[str, Any], workers: int | None
                 ) -> gym.vector.VectorEnv:
    """``num_envs`` runs of ``env_id`` over ``workers`` (default 1, at most one per run) Ray
    actors of the cluster :func:`use` connected to; a bad setting ends the program with the
    env's message."""
    workers = min(workers or 1, num_envs)
    try:
        return RayVectorEnv(env_id, num_envs, workers, kwargs)
    except ENV_ERRORS as err:
        raise UsageError(message_of(err)) from err
