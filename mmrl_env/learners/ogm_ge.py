"""``ogm_ge``: joint training with on-the-fly gradient modulation and Gaussian enhancement.

The modality that is ahead on the current batch has its encoder's gradients damped, so
the fused loss stops being satisfied by it alone; Gaussian noise (GE) with the gradient's
own spread keeps the damped encoder exploring instead of stalling. All arithmetic stays in
device tensors (the "is ρ > 1" decision is a mask, not a host branch).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mmrl_env.learners.base import Batch
from mmrl_env.learners.joint import JointLearner
from mmrl_env.metrics import true_class_score


def ogm_coefficients(scores: Tensor, alpha: float, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """ρ_m = s_m / mean_{k≠m} s_k; k_m = 1 − tanh(α·ρ_m) where ρ_m > 1, else 1.

    With M = 2 the mean of the others is the other modality, so this is exactly OGM's
    s_strong/s_weak rule; with M > 2 every modality ahead of the others' mean is damped
    (our generalisation). Returns (coefficients k, mask of modulated modalities).
    """
    m = scores.numel()
    others = (scores.sum() - scores) / (m - 1)
    rho = scores / (others + eps)
    modulated = rho > 1
    return torch.where(modulated, 1 - torch.tanh(alpha * rho), torch.ones_like(rho)), modulated


class OGMGELearner(JointLearner):
    """JointLearner whose strong encoder's gradients are scaled by k and perturbed (GE).

    ``alpha_ogm``: modulation strength (0.8, the CREMA-D reference); ``modulation_epochs``:
    inclusive epoch window [start, end] in which modulation is applied (reference 0–50);
    ``ge``: add the Gaussian enhancement noise.
    """

    def __init__(self, dataset, optim, device, generator, alpha_ogm: float = 0.8,
                 modulation_epochs: tuple[int, int] = (0, 50), ge: bool = True, **joint_kwargs) -> None:
        self.alpha_ogm = alpha_ogm
        self.modulation_epochs = (int(modulation_epochs[0]), int(modulation_epochs[1]))
        self.ge = ge
        self.epoch = 0
        super().__init__(dataset, optim, device, generator, **joint_kwargs)
        if device.type == "cpu":
            self.noise_generator = generator
        else:  # GE noise is drawn on the device: a device generator seeded from ours
            self.noise_generator = torch.Generator(device)
            self.noise_generator.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item()))
        self.last_coeff = torch.ones(dataset.num_modalities, device=device)

    def modulate_gradients(self, batch: Batch, logits: list[Tensor]) -> None:
        lo, hi = self.modulation_epochs
        if not lo <= self.epoch <= hi or batch.n_common == 0:
            self.last_coeff = torch.ones_like(self.last_coeff)
            return
        n = batch.n_common
        # OGM's s_m is a sum over the common rows; the mean (the CMD's score) gives the same ratios.
        y = batch.labels[0][:n]
        coeff, modulated = ogm_coefficients(torch.stack([true_class_score(z[:n], y) for z in logits]), self.alpha_ogm)
        self.last_coeff = coeff.detach()
        for j, encoder in enumerate(self.model.encoders):
            for p in encoder.parameters():
                if p.grad is None:
                    continue
                g = p.grad
                scaled = g * coeff[j]
                if self.ge:
                    noise = torch.randn(g.shape, generator=self.noise_generator, device=g.device, dtype=g.dtype)
                    scaled = scaled + modulated[j] * noise * g.std(correction=0)
                p.grad = scaled

    def on_epoch_end(self, epoch: int) -> None:
        super().on_epoch_end(epoch)
        self.epoch = epoch + 1

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "epoch": self.epoch, "last_coeff": self.last_coeff.clone(),
                "noise_generator": self.noise_generator.get_state()}  # its own generator off the CPU

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.epoch = int(state["epoch"])
        self.last_coeff = state["last_coeff"].to(self.device)
        self.noise_generator.set_state(state["noise_generator"])

    def info(self) -> dict[str, Any]:
        names = self.dataset.modality_names
        return {"ogm_coeff": dict(zip(names, self.last_coeff.tolist(), strict=True))}
