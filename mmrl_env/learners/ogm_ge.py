"""``ogm_ge``: on-the-fly gradient modulation with Gaussian enhancement (OGM-GE, CVPR 2022).

The modality that is ahead on the current batch has its encoder's gradients damped, so
the fused loss stops being satisfied by it alone; Gaussian noise (GE) keeps every encoder
exploring. Two variants (``variant``):

- ``"published"`` (default): the authors' baseline, so numbers compare with the OGM row of the BSS
  paper's Table 1. Loss = cross-entropy of the fused logits only; modality j's score comes from its share
  of the fusion layer, z_j = u_j·W_jᵀ + b/M (W_j: the columns of the concat layer that read
  u_j; with ``fusion="sum"`` modality j's own layer); inference = the fused logits.
- ``"joint"``: the ``joint`` learner (auxiliary unimodal losses, inference z_multi + Σ_j z_j)
  with ρ taken from its unimodal heads: our earlier variant, kept for comparison.

Modulation and GE follow the first release of the authors' ``main.py``: inside the
modulation window, each modality's encoder weight tensors (``dim ≥ 2``: the conv kernels of
the reference's ResNets, and the linear weights of an MLP encoder) get g ← k_j·g, then
g ← g + N(0, std(g)²) with the std of the *scaled* gradient, on every modality (k = 1 for the
ones not ahead). Biases and norm parameters are untouched, as in the reference. (A later
revision of ``main.py`` draws the noise from the unscaled gradient's std, which makes
noise/signal = 1/k on the damped modality; we follow the first.) All arithmetic stays in
device tensors: the "is ρ > 1" decision is a mask, not a host branch.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from mmrl_env.learners.base import Batch, Prediction, StepOutput
from mmrl_env.learners.joint import JointLearner
from mmrl_env.metrics import true_class_score
from mmrl_env.models.fusion import ConcatFusion, SumFusion

VARIANTS = ("published", "joint")
AUTO_WINDOW_FRACTION = 0.5  # "auto" window: the first half of the run (reference: epochs 0–50 of 100)
PAPER_WINDOW = (0, 50)


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


def fusion_slice_logits(fusion: nn.Module, feats: list[Tensor]) -> list[Tensor]:
    """Modality j's share of the fused logits, u_j·W_jᵀ + b/M (the reference's out_a / out_v)."""
    m = len(feats)
    if isinstance(fusion, ConcatFusion):
        weights = fusion.fc.weight.split([u.shape[1] for u in feats], dim=1)
        return [nn.functional.linear(u, w, fusion.fc.bias / m) for u, w in zip(feats, weights, strict=True)]
    if isinstance(fusion, SumFusion):
        return [nn.functional.linear(u, fc.weight, fc.bias / m) for fc, u in zip(fusion.fcs, feats, strict=True)]
    raise ValueError(f"the published OGM-GE reads per-modality scores from a linear fusion layer: use fusion='concat' "
                     f"or 'sum' (got {type(fusion).__name__}), or variant='joint' for the other fusions")


def check_variant(variant: str, joint_kwargs: dict[str, Any]) -> None:
    """``variant`` is known, and ``alpha`` (the joint variant's auxiliary weight) only comes with it."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if variant == "published" and "alpha" in joint_kwargs:
        raise ValueError("alpha weighs the auxiliary unimodal losses of variant='joint'; the published OGM-GE "
                         "trains the fused cross-entropy only (drop alpha or set variant='joint')")


def resolve_window(window: tuple[int, int] | list[int] | str, epochs: int | None) -> tuple[int, int]:
    """``"auto"``: epochs [0, round(½·epochs)] (reference 0–50 of 100); a fixed window that starts after
    the run's last epoch warns, since it never acts."""
    if window == "auto":
        return PAPER_WINDOW if epochs is None else (0, round(AUTO_WINDOW_FRACTION * epochs))
    if isinstance(window, str) or len(window) != 2 or int(window[0]) > int(window[1]):
        raise ValueError(f"modulation_epochs must be 'auto' or an inclusive [start, end] epoch window, got {window!r}")
    lo, hi = int(window[0]), int(window[1])
    if epochs is not None and lo > epochs - 1:
        warnings.warn(f"modulation_epochs={list(window)} starts after the run's last epoch ({epochs - 1}): OGM-GE "
                      "never acts; use modulation_epochs='auto' (the first half of the run)", stacklevel=3)
    return lo, hi


class OGMGELearner(JointLearner):
    """OGM-GE (module docstring). ``variant``: ``published`` (default) or ``joint``.

    ``alpha_ogm``: modulation strength (0.8, the CREMA-D reference); ``modulation_epochs``:
    inclusive epoch window [start, end] in which modulation and GE act (``"auto"``: the first
    half of the run; reference 0–50 of 100); ``ge``: add the Gaussian enhancement noise.
    ``alpha`` (auxiliary loss weight) only exists for ``variant="joint"``; ``fusion`` must be
    ``concat`` or ``sum`` for ``published``.
    """

    def __init__(self, dataset, optim, device, generator, alpha_ogm: float = 0.8,
                 modulation_epochs: tuple[int, int] | str = "auto", ge: bool = True, variant: str = "published",
                 **joint_kwargs) -> None:
        check_variant(variant, joint_kwargs)
        self.variant, self.alpha_ogm, self.ge = variant, alpha_ogm, ge
        self.window_arg = modulation_epochs
        self.modulation_epochs = resolve_window(modulation_epochs, None)
        self.epoch = 0
        super().__init__(dataset, optim, device, generator, **joint_kwargs)
        if variant == "published":
            fusion_slice_logits(self.model.fusion, [torch.zeros(1, int(e.out_dim), device=device)
                                                    for e in self.model.encoders])  # unsupported fusion: fail now
        if device.type == "cpu":
            self.noise_generator = generator
        else:  # GE noise is drawn on the device: a device generator seeded from ours
            self.noise_generator = torch.Generator(device)
            self.noise_generator.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item()))
        self.last_coeff = torch.ones(dataset.num_modalities, device=device)
        # The reference modulates conv kernels only; here every encoder weight tensor (dim ≥ 2).
        self.modulated_params = [[p for p in enc.parameters() if p.dim() >= 2] for enc in self.model.encoders]

    def set_run_length(self, epochs: int, iterations_per_epoch: int) -> None:
        super().set_run_length(epochs, iterations_per_epoch)
        self.modulation_epochs = resolve_window(self.window_arg, epochs)

    def train_step(self, batch: Batch) -> StepOutput:
        if self.variant == "joint":
            return super().train_step(batch)
        model, n = self.model, batch.n_common
        self.set_training(True)
        loss = torch.zeros((), device=self.device)
        with self.autocast():
            feats = [model.encode(j, x) for j, x in enumerate(batch.inputs)]
            logits = fusion_slice_logits(model.fusion, feats)
            if n > 0:
                z_multi = model.fusion([u[:n] for u in feats])
                loss = nn.functional.cross_entropy(z_multi.float(), batch.labels[0][:n])
        self.optimizer.zero_grad(set_to_none=True)
        if n > 0:  # with no common rows there is no fused sample, hence nothing to learn from
            loss.backward()
            self.modulate_gradients(batch, logits)
            self.optimizer.step()
        return StepOutput(loss.detach(), [z.detach().float() for z in logits])

    def modulate_gradients(self, batch: Batch, logits: list[Tensor]) -> None:
        lo, hi = self.modulation_epochs
        if not lo <= self.epoch <= hi or batch.n_common == 0:
            self.last_coeff = torch.ones_like(self.last_coeff)
            return
        n = batch.n_common
        # OGM's s_m is a sum over the common rows; the mean (the CMD's score) gives the same ratios.
        y = batch.labels[0][:n]
        scores = torch.stack([true_class_score(z.detach()[:n], y) for z in logits])
        coeff, _ = ogm_coefficients(scores, self.alpha_ogm)
        self.last_coeff = coeff.detach()
        for j, params in enumerate(self.modulated_params):
            for p in params:
                if p.grad is None:
                    continue
                g = p.grad * coeff[j].to(p.grad.dtype)
                if self.ge:
                    noise = torch.randn(g.shape, generator=self.noise_generator, device=g.device, dtype=g.dtype)
                    g = g + noise * ((g.std() if g.numel() > 1 else 0.0) + 1e-8)
                p.grad = g

    @torch.no_grad()
    def predict(self, inputs: list[Tensor]) -> Prediction:
        if self.variant == "joint":
            return super().predict(inputs)
        self.set_training(False)
        with self.autocast():
            feats = [self.model.encode(j, x) for j, x in enumerate(inputs)]
            uni = [z.float() for z in fusion_slice_logits(self.model.fusion, feats)]
            multi = self.model.fusion(feats).float()
        return Prediction(multi, uni, multi)

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
