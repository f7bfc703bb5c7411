"""``ogm_ge``: on-the-fly gradient modulation with Gaussian enhancement (OGM-GE, CVPR 2022), for K runs.

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

Per run (run k = one inner run with its own seed), in one place each:

* *Scores and coefficients.* Modality j's score is its mean true-class probability over the
  run's common rows (:func:`masked_score`); :func:`ogm_coefficients` per run; each run's
  modulation window is checked against its own epoch count.
* *Which parameters step.* The published variant never gives the auxiliary heads a gradient
  (they are not in its optimizer groups: no weight decay) and does not step at all on a batch
  without common rows (no fused sample, nothing to learn from); the joint variant's fusion
  head has no gradient on such a batch. Groups with per-run gates (:mod:`mmrl_env.learners.base`).
* *GE noise.* ``torch.Generator`` has no batched form, so the noise is drawn outside ``vmap``,
  per modulated run, from that run's own generator (the trainer's generator on CPU, a device
  generator seeded from it elsewhere), one ``randn`` per encoder weight tensor in parameter
  order; the scaling and the std of the scaled gradient are batched. Which runs draw is known
  on the host from the trainer's host copy of the sizes (no device read).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import grad_and_value, vmap

from mmrl_env.data.base import MultimodalDataset
from mmrl_env.engine.batch import VectorBatch, VectorPrediction, VectorStepOutput
from mmrl_env.engine.optim import OptimConfig
from mmrl_env.learners.base import StackedLearner
from mmrl_env.learners.joint import (
    JointNet,
    check_alpha,
    joint_objective,
    masked_batch_normalised_ce,
    masked_mean_ce,
    sum_terms,
)
from mmrl_env.metrics import true_class_probability
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
        return [nn.functional.linear(u, fc.weight, fc.bias / m) for fc, u in zip(fusion.linears, feats, strict=True)]
    raise unsliceable_fusion(fusion)


def unsliceable_fusion(fusion: nn.Module) -> ValueError:
    """The error for a fusion head without per-modality linear slices (raised at construction)."""
    return ValueError(f"the published OGM-GE reads per-modality scores from a linear fusion layer: use fusion='concat' "
                     f"or 'sum' (got {type(fusion).__name__}), or variant='joint' for the other fusions")


def check_variant(variant: str, alpha: float | None) -> None:
    """``variant`` is known, and ``alpha`` (the joint variant's auxiliary weight) only comes with it."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if variant == "published" and alpha is not None:
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


class OGMNet(JointNet):
    """``JointNet`` whose unimodal logits are, for the published variant, each modality's
    share of the fusion layer (:func:`fusion_slice_logits`); same parameters and names."""

    def forward(self, inputs: list[Tensor], masks: Tensor | None = None, bn_stats: dict[str, Any] | None = None,
                published: bool = False) -> tuple[list[Tensor], Tensor]:
        if not published:
            return super().forward(inputs, masks, bn_stats)
        feats = self.features(inputs, masks, bn_stats)
        return fusion_slice_logits(self.fusion, feats), self.fusion(feats)


def masked_score(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """OGM's score s_m: the mean true-class probability over the rows where ``mask`` is 1 (0 with
    none). OGM sums over the batch; the mean (the CMD's score) gives the same ratios."""
    return (true_class_probability(logits, labels) * mask).sum() / mask.sum().clamp(min=1)


class OGMGELearner(StackedLearner):
    """K OGM-GE runs (module docstring). ``variant``: ``published`` (default) or ``joint``.

    ``alpha_ogm``: modulation strength (0.8, the CREMA-D reference); ``modulation_epochs``:
    inclusive epoch window [start, end] in which modulation and GE act (``"auto"``: the first
    half of the run; reference 0–50 of 100); ``ge``: add the Gaussian enhancement noise.
    ``alpha`` (auxiliary loss weight, default 0.2) only exists for ``variant="joint"``; ``fusion``
    must be ``concat`` or ``sum`` for ``published``.
    """

    def __init__(self, dataset: MultimodalDataset, optim: OptimConfig, device: torch.device,
                 generators: Sequence[torch.Generator], alpha_ogm: float = 0.8,
                 modulation_epochs: tuple[int, int] | str = "auto", ge: bool = True, variant: str = "published",
                 alpha: float | None = None, fusion: str = "concat") -> None:
        check_variant(variant, alpha)
        self.alpha = 0.2 if alpha is None else float(alpha)
        check_alpha(self.alpha)
        self.variant, self.alpha_ogm, self.ge = variant, alpha_ogm, ge
        self.published = variant == "published"
        self.window_arg = modulation_epochs
        self.modulation_epochs = resolve_window(modulation_epochs, None)
        super().__init__(lambda: OGMNet(dataset.modalities, dataset.num_classes, fusion), dataset, optim, device,
                         generators)
        template = self.stack.template
        if self.published:  # an unsupported fusion fails now, not at the first step
            head = template.get_submodule("fusion")
            if not isinstance(head, (ConcatFusion, SumFusion)):
                raise unsliceable_fusion(head)
            # no loss reads the auxiliary heads: they never step (no weight decay either)
            self.add_group("model", lambda n: not n.startswith("heads."))
        else:  # the fusion head has no gradient on a batch without common rows
            self.add_group("model", lambda n: not n.startswith("fusion."))
            self.add_group("fusion", lambda n: n.startswith("fusion."))
        # the modulated tensors: every encoder weight with dim >= 2, in parameter order
        shapes = dict(zip(self.stack.names, self.stack.shapes, strict=True))
        self.modulated = [[(cols, shapes[n]) for n, cols in self.stack.columns.items()
                           if n.startswith(f"encoders.{j}.") and len(shapes[n]) >= 2]
                          for j in range(dataset.num_modalities)]
        self.noise_generators: list[torch.Generator] = [torch.Generator()] * len(generators)
        self._reset_state(list(range(len(generators))), generators)
        self._train_fn = self.map_runs(grad_and_value(self._loss, has_aux=True), (0, 0, 0, 0, 0, None))

    def set_run_length(self, epochs: int, iterations_per_epoch: int) -> None:
        super().set_run_length(epochs, iterations_per_epoch)
        self.modulation_epochs = resolve_window(self.window_arg, epochs)

    def _reset_state(self, runs: list[int], generators: Sequence[torch.Generator]) -> None:
        if not hasattr(self, "last_coeff"):
            self.last_coeff = torch.ones(self.num_runs, self.dataset.num_modalities, device=self.device)
        self.last_coeff[runs] = 1.0
        for run, gen in zip(runs, generators, strict=True):
            if self.device.type == "cpu":
                self.noise_generators[run] = gen
            else:  # GE noise is drawn on the device: a device generator seeded from the run's own
                noise = torch.Generator(self.device)
                noise.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen).item()))
                self.noise_generators[run] = noise

    def _loss(self, flat: Tensor, buffers: dict[str, Tensor], inputs: list[Tensor], labels: Tensor, masks: Tensor,
              batch_size: int) -> tuple[Tensor, tuple[list[Tensor], Tensor, dict[str, Any]]]:
        """One run's loss and its modalities' scores on the common rows (mapped over the runs)."""
        stats: dict[str, Any] = {}
        uni, z_multi = self._run_model(flat, buffers, inputs, masks, stats, self.published)
        uni = [z.float() for z in uni]
        common = masks.amin(dim=0)
        fused = masked_mean_ce(z_multi.float(), labels, common)
        if self.published:
            loss = fused
        else:
            uni_loss = sum_terms(masked_batch_normalised_ce(z, labels, m, batch_size)
                                 for z, m in zip(uni, masks, strict=True))
            loss = joint_objective(uni_loss, fused, self.alpha)
        scores = torch.stack([masked_score(z.detach(), labels, common) for z in uni])
        return loss, ([z.detach() for z in uni], scores, stats)

    def train_step(self, batch: VectorBatch) -> VectorStepOutput:
        """One update of every active run (a run with all sizes 0 keeps its state exactly)."""
        self._set_training(True)
        active = batch.active
        has_common = active & (batch.n_common > 0)
        grads, (loss, (logits, scores, stats)) = self._train_fn(self.stack.flat, self.stack.buffers, batch.inputs,
                                                               batch.labels, batch.masks, batch.batch_size)
        self.modulate_gradients(batch, grads, scores)
        if self.published:  # no common row: no fused sample, hence nothing to learn from: no step
            self.step_group("model", grads, has_common)
        else:
            self.step_group("model", grads, active)
            self.step_group("fusion", grads, has_common)
        self.update_batchnorm(stats, active)
        stepped = has_common if self.published else active
        return VectorStepOutput(loss.detach() * stepped, logits, active)

    @torch.no_grad()
    def modulate_gradients(self, batch: VectorBatch, grads: Tensor, scores: Tensor) -> None:
        """In the modulation window, scale each run's encoder weight gradients (flat (K, P) ``grads``,
        in place) by k_j from its modalities' ``scores`` (K, M) on the batch's common rows, then add
        GE noise; outside it, or for a run without common rows, leave them as they are."""
        has_common = batch.active & (batch.n_common > 0)
        lo, hi = self.modulation_epochs
        window = (self.epoch >= lo) & (self.epoch <= hi)
        # the coefficient reported in ``info``: k in the window, 1 outside; a published run without a
        # common row does not step and keeps its last one, a joint-variant run (which steps) reports 1
        touched = has_common if self.published else batch.active
        if not window.any():
            self.last_coeff = torch.where(touched.unsqueeze(1), 1.0, self.last_coeff)
            return
        mod = has_common & window.to(self.device, non_blocking=True)  # host epochs: no wait for the GPU
        coeff, _ = vmap(ogm_coefficients, in_dims=(0, None))(scores, self.alpha_ogm)
        coeff = torch.where(mod.unsqueeze(1), coeff, torch.ones_like(coeff))
        self.last_coeff = torch.where(touched.unsqueeze(1), coeff, self.last_coeff)
        # host (no device sync): which runs draw from their generator, i.e. ``mod`` from the host sizes
        drawing = ((batch.host_n_common() > 0) & window).tolist() if self.ge else []
        for j, tensors in enumerate(self.modulated):
            for (a, b), shape in tensors:
                g = grads[:, a:b] * coeff[:, j : j + 1].to(grads.dtype)
                if self.ge:
                    noise = torch.zeros_like(g)
                    for k, draws in enumerate(drawing):
                        if draws:
                            noise[k] = torch.randn(shape, generator=self.noise_generators[k], device=g.device,
                                                   dtype=g.dtype).flatten()
                    g = g + noise * (g.std(dim=1, keepdim=True) + 1e-8)
                grads[:, a:b] = torch.where(mod.unsqueeze(1), g, grads[:, a:b])

    @torch.no_grad()
    def predict(self, inputs: list[Tensor], per_run: bool = False) -> VectorPrediction:
        """Every run's logits on ``inputs`` (shared (N, ...) tensors, or (K, N, ...) with ``per_run``):
        published: fused = z_multi, unimodal = fusion slices; joint: fused = z_multi + Σ_j z_j."""
        self._set_training(False)
        uni, multi = self._predict_fn(per_run)(self.stack.flat, self.stack.buffers, inputs)
        fused = multi if self.published else multi + torch.stack(uni).sum(0)
        return VectorPrediction(fused, uni, multi)

    def _forward(self, flat: Tensor, buffers: dict[str, Tensor], inputs: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        uni, z_multi = self._run_model(flat, buffers, inputs, None, None, self.published)
        return [z.float() for z in uni], z_multi.float()

    def run_info(self, run: int) -> dict[str, Any]:
        names = self.dataset.modality_names
        return {"ogm_coeff": dict(zip(names, self.last_coeff[run].tolist(), strict=True))}

    def _extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"last_coeff": self.last_coeff.clone()}
        if self.device.type != "cpu":  # on CPU the noise comes from the trainer's generators, saved there
            state["noise_generators"] = [g.get_state() for g in self.noise_generators]
        return state

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.last_coeff = state["last_coeff"].to(self.device).clone()
        for g, s in zip(self.noise_generators, state.get("noise_generators", []), strict=False):
            g.set_state(s)
