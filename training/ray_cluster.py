"""``--ray [ADDRESS]`` and ``--ray-workers N`` of the CLIs: the inner runs in Ray actors.

Kept apart from the CLIs' own modules so that each CLI adds the flags (:func:`add_flags`), reads
them into a :class:`RaySettings` (:func:`settings`), connects (:func:`connect`) and hands the
settings to whatever makes its vector envs — the training env and the one-episode-per-seed envs
of a comparison (``mmrl_training.run_config.make_runs``) — which then are
:class:`~mmrl_env.envs.ray_vector.RayVectorEnv` s over ``workers`` actors. No module state: the
settings travel as an argument (in ``train_agent.py``, as the ``ray`` part of its
``RunConfig``). Without ``--ray`` nothing here imports ``ray``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from mmrl_env.envs.ray_vector import RayVectorEnv, import_ray, init_ray
from mmrl_training.cli_errors import ENV_ERRORS, UsageError, message_of

LOCAL = "local"  # --ray without an address: a local cluster started by this process


@dataclass(frozen=True)
class RaySettings:
    """Where the inner runs go: the cluster at ``address`` (:data:`LOCAL`: one this process
    starts, of ``workers`` CPUs), over ``workers`` actors per vector env."""

    address: str = LOCAL
    workers: int = 1


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
                   help="run the inner runs in Ray actors: on the cluster at ADDRESS (what 'ray start --head' "
                   "prints, or 'auto'), or without ADDRESS on a local cluster of --ray-workers CPUs; needs the "
                   "optional extra: pip install -e '.[ray]' (docs/ray.md)")
    p.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="with --ray: Ray actors (default 1), each hosting an equal share of the envs as one batched "
                   "engine, on a GPU of its own when the cluster has them")


def check_flags(address: str | None, workers: int | None) -> None:
    """Bad combinations, and a missing ``ray``, refused before anything starts."""
    from mmrl_training.validate import check_range  # imports torch: not before the CLIs have parsed (--help)

    if address is None:
        if workers is not None:
            raise UsageError("--ray-workers applies to --ray only")
        return
    check_range("--ray-workers", workers, 1)
    try:
        import_ray()
    except ImportError as err:
        raise UsageError(f"--ray: {message_of(err)}") from err


def settings(address: str | None, workers: int | None, refuse: str | None = None) -> RaySettings | None:
    """The checked flags (:func:`check_flags`); ``None`` without ``--ray``. ``refuse``: the reason
    ``--ray`` does not apply to this invocation (it is then refused)."""
    check_flags(address, workers)
    if address is None:
        return None
    if refuse:
        raise UsageError(refuse)
    return RaySettings(address, workers or 1)


def connect(ray: RaySettings | None) -> None:
    """Connect to (or start) the cluster of ``ray``; nothing without it."""
    if ray is None:
        return
    try:
        init_ray(None if ray.address == LOCAL else ray.address, num_cpus=ray.workers)
    except ImportError as err:  # a resumed Ray run on a machine without the extra
        raise UsageError(f"--ray: {message_of(err)}") from err
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise UsageError(f"--ray {ray.address}: cannot connect to a Ray cluster there ({message_of(err)})") from err


def make_vec_env(env_id: str, num_envs: int, kwargs: dict[str, Any], ray: RaySettings) -> gym.vector.VectorEnv:
    """``num_envs`` runs of ``env_id`` over ``ray.workers`` Ray actors (at most one per run); a
    bad setting ends the program with the env's message."""
    workers = min(ray.workers, num_envs)
    try:
        return RayVectorEnv(env_id, num_envs, workers, kwargs)
    except ENV_ERRORS as err:
        raise UsageError(message_of(err)) from err
