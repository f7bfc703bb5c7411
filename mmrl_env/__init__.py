"""mmrl: multimodal training as a reinforcement-learning problem.

``import mmrl_env`` registers the Gymnasium ids ``{DUS,BSS}-<Dataset>`` without importing
torch or touching data; ``gymnasium.make("DUS-Synthetic")`` builds one.
"""

from mmrl_env.data.registry import dataset_names, register_dataset
from mmrl_env.envs.registration import env_ids, register_envs

register_envs()


def set_default_threads(threads: int | str) -> None:
    """Torch threads of every env's inner training in this process when its ``threads`` setting
    is ``"auto"`` (the default): an int (0 = leave torch's setting alone) or ``"auto"`` (one
    thread on a CPU device unless you chose a count). See :mod:`mmrl_env.threads`."""
    from mmrl_env.threads import set_default_threads as set_default

    set_default(threads)


__all__ = ["dataset_names", "env_ids", "register_dataset", "register_envs", "set_default_threads"]
__version__ = "0.1.0"
