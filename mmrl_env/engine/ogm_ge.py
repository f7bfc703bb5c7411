"""``ogm_ge`` for K runs at once: run k is :class:`~mmrl_env.learners.ogm_ge.OGMGELearner` with run k's seed.

Both variants, the same kwargs and validation. The loss, the scores and the coefficients are
the single learner's functions (:func:`~mmrl_env.learners.ogm_ge.fusion_slice_logits`,
:func:`~mmrl_env.metrics.true_class_probability` over the common rows,
:func:`~mmrl_env.learners.ogm_ge.ogm_coefficients` under ``vmap``); each run's modulation
window is checked against its own epoch count.

Per-run choices, in one place each:

* *Which parameters step.* The published variant never gives the auxiliary heads a gradient
  (the single optimizer skips them: no weight decay) and does not step at all on a batch
  without common rows; the joint variant's fusion head has no gradient on such a batch. The
  port steps the same groups with per-run gates (:mod:`~mmrl_env.engine.stacked`).
* *GE noise, exactly as the single run draws it.* ``torch.Generator`` has no batched form, so
  the noise is drawn outside ``vmap``, per modulated run, from that run's own generator (the
  trainer's generator on CPU, a device generator seeded from it elsewhere — as the single
  learner), one ``randn`` per encoder weight tensor in the single learner's order; the
  scaling and the std of the scaled gradient are batched. Which runs draw is known on the
  host from the trainer's host copy of the sizes (no device read).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, grad_and_value, vmap

from mmrl_env.data.base import MultimodalDataset
from mmrl_env.engine.batch import VectorBatch, VectorPrediction, VectorStepOutput
from mmrl_env.engine.joint import JointNet, masked_batch_normalised_ce, masked_mean_ce
from mmrl_env.engine.stacked import StackedLearner
from mmrl_env.learners.base import OptimConfig
from mmrl_env.learners.joint import check_alpha, joint_objective
from mmrl_env.learners.ogm_ge import check_variant, fusion_slice_logits, ogm_coefficients, resolve_window
from mmrl_env.metrics import true_class_probability


class OGMNet(JointNet):
    """``JointNet`` whose unimodal logits are, for the published variant, each modality's
    share of the fusion layer (the single learner's scores); same parameters and names."""

    def forward(self, inputs: list[Tensor], masks: Tensor | None = None, bn_stats: dict[str, Any] | None = None,
                published: bool = False) -> tuple[list[Tensor], Tensor]:
        if not published:
            return super().forward(inputs, masks, bn_stats)
        feats = self.features(inputs, masks, bn_stats)
        return fusion_slice_logits(self.fusion, feats), self.fusion(feats)


def masked_score(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """``true_class_score`` over the rows where ``mask`` is 1 (0 with none)."""
    return (true_class_probability(logits, labels) * mask).sum() / mask.sum().clamp(min=1)


class VectorOGMGELearner(StackedLearner):
    """K OGM-GE runs; kwargs as :class:`~mmrl_env.learners.ogm_ge.OGMGELearner`."""

    def __init__(self, dataset: MultimodalDataset, optim: OptimConfig, device: torch.device,
                 generators: Sequence[torch.Generator], alpha_ogm: float = 0.8,
                 modulation_epochs: tuple[int, int] | str = "auto", ge: bool = True, variant: str = "published",
                 **joint_kwargs: Any) -> None:
        check_variant(variant, joint_kwargs)
        unknown = set(joint_kwargs) - {"alpha", "fusion"}
        if unknown:
            raise TypeError(f"unexpected OGM-GE keyword(s) {sorted(unknown)}")
        self.alpha = float(joint_kwargs.get("alpha", 0.2))
        check_alpha(self.alpha)
        self.variant, self.alpha_ogm, self.ge = variant, alpha_ogm, ge
        self.published = variant == "published"
        self.window_arg = modulation_epochs
        self.modulation_epochs = resolve_window(modulation_epochs, None)
        fusion = joint_kwargs.get("fusion", "concat")
        super().__init__(lambda: OGMNet(dataset.modalities, dataset.num_classes, fusion), dataset, optim, device,
                         generators)
        template = self.stack.template
        if self.published:  # an unsupported fusion fails now, as in the single learner
            fusion_slice_logits(template.fusion, [torch.zeros(1, int(e.out_dim), device="meta")
                                                  for e in template.encoders])
            # the heads never get a gradient: the single optimizer skips them
            self.add_group("model", lambda n: not n.startswith("heads."))
        else:  # the fusion head has no gradient on a batch without common rows
            self.add_group("model", lambda n: not n.startswith("fusion."))
            self.add_group("fusion", lambda n: n.startswith("fusion."))
        # the single learner's modulated tensors: every encoder weight with dim >= 2, in parameter order
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
            else:  # as the single learner: a device generator seeded from the run's own
                noise = torch.Generator(self.device)
                noise.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen).item()))
                self.noise_generators[run] = noise

    def _loss(self, flat: Tensor, buffers: dict[str, Tensor], inputs: list[Tensor], labels: Tensor, masks: Tensor,
              batch_size: int) -> tuple[Tensor, tuple[list[Tensor], Tensor, dict[str, Any]]]:
        """One run's loss and its modalities' scores on the common rows (under vmap)."""
        stats: dict[str, Any] = {}
        with self._autocast():
            uni, z_multi = functional_call(self.stack.template, (self.stack.unflatten(flat), buffers),
                                           (inputs, masks, stats, self.published))
        uni = [z.float() for z in uni]
        common = masks.amin(dim=0)
        fused = masked_mean_ce(z_multi.float(), labels, common)
        if self.published:
            loss = fused
        else:
            uni_loss = sum(masked_batch_normalised_ce(z, labels, m, batch_size)
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
        self._modulate(grads, scores, has_common, batch)
        if self.published:  # no common row: no fused sample, no step (single learner)
            self.step_group("model", grads, has_common)
        else:
            self.step_group("model", grads, active)
            self.step_group("fusion", grads, has_common)
        self.update_batchnorm(stats, active)
        stepped = has_common if self.published else active
        return VectorStepOutput(loss.detach() * stepped, logits, active)

    @torch.no_grad()
    def _modulate(self, grads: Tensor, scores: Tensor, has_common: Tensor, batch: VectorBatch) -> None:
        """Scale each modulated run's encoder weight gradients by k_j, then add GE noise (in place)."""
        lo, hi = self.modulation_epochs
        window = (self.epoch >= lo) & (self.epoch <= hi)
        # the coefficient the single learner keeps: k in the window, 1 outside; published runs without a
        # common row keep their last one (modulate_gradients is not called), joint-variant runs reset it
        touched = has_common if self.published else batch.active
        if not window.any():
            self.last_coeff = torch.where(touched.unsqueeze(1), 1.0, self.last_coeff)
            return
        mod = has_common & window.to(self.device)
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
        with self._autocast():
            uni, z_multi = functional_call(self.stack.template, (self.stack.unflatten(flat), buffers),
                                           (inputs, None, None, self.published))
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
