"""Datasets: the data contract (``base``), loaders, and the name registry (torch-free)."""

from mmrl_env.data.registry import dataset_names, load_dataset, register_dataset

__all__ = ["dataset_names", "load_dataset", "register_dataset"]
