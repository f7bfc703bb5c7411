"""Only what pyproject.toml cannot say: the top-level ``configs/`` folder (the rl-zoo style
hyperparameter files, kept where users and rl-zoo3's ``-conf configs/ppo.yaml`` expect
them) is also installed as the package ``training.configs``, so a plain (non-editable)
``pip install .`` finds them (``training.config.config_dir``). Package discovery stays
automatic, so a new subpackage ships without an edit here."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["mmrl_env*", "agents*", "training*"]), "training.configs"],
    package_dir={"training.configs": "configs"},
    package_data={"mmrl_env": ["py.typed"],  # PEP 561: the package's type hints are for its users' checkers too
                  "mmrl_env.data": ["splits/*/*.csv", "splits/*/*.txt", "README.md", "mfeat_data/*"],
                  "agents": ["weights/*.pt", "weights/*.json"],  # the pretrained policies: tensors + JSON
                  "training.configs": ["*.yaml", "paper/*.yaml"]},
)
