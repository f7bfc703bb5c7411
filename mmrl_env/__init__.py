"""mmrl: multimodal training as a reinforcement-learning problem.

``import mmrl_env`` registers the Gymnasium ids ``{DUS,BSS}-<Dataset>`` without importing
torch or touching data; ``gymnasium.make("DUS-Synthetic")`` builds one.
"""

from mmrl_env.data.registry import dataset_names, register_dataset
from mmrl_env.envs.registration import env_ids, register_envs

register_envs()

__all__ = ["dataset_names", "env_ids", "register_dataset", "register_envs"]
__version__ = "0.1.0"
