"""Only what pyproject.toml cannot say: the folders ``agents/`` and ``training/`` install under
namespaced import names, ``mmrl_agents`` and ``mmrl_training`` (generic top-level names would
collide with other projects in site-packages), and the top-level ``configs/`` folder (the
rl-zoo style hyperparameter files, kept where users and rl-zoo3's ``-conf configs/ppo.yaml``
expect them) installs as the package ``mmrl_training.configs``, so a plain (non-editable)
``pip install .`` finds them (``mmrl_training.config.config_dir``). Package discovery stays
automatic, so a new subpackage ships without an edit here."""

from setuptools import find_packages, setup

# source folder -> installed import name
RENAMED = {"agents": "mmrl_agents", "training": "mmrl_training"}


def renamed(folder: str) -> list[str]:
    """The installed names of ``folder`` and its subpackages."""
    return [RENAMED[folder] + name[len(folder):] for name in find_packages(include=[folder, f"{folder}.*"])]


setup(
    packages=[*find_packages(include=["mmrl_env*"]), *renamed("agents"), *renamed("training"),
              "mmrl_training.configs"],
    package_dir={"mmrl_agents": "agents", "mmrl_training": "training", "mmrl_training.configs": "configs"},
    package_data={"mmrl_env": ["py.typed"],
                  "mmrl_env.data": ["splits/*/*.csv", "splits/*/*.txt", "README.md", "mfeat_data/*"],
                  "mmrl_agents": ["weights/*.pt", "weights/*.json"],  # the pretrained policies: tensors + JSON
                  "mmrl_training.configs": ["*.yaml", "paper/*.yaml"]},
)
