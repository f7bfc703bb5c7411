"""``boosting`` (AUG) for K runs at once: run k is :class:`~mmrl_env.learners.boosting.BoostingLearner`
with run k's seed.

Dynamic classifier counts, solved here with slots and masks:

* Every run's model pre-allocates ``max_classifiers − 1`` extra Layer1 slots per modality
  (``slots.r.t`` is the single model's ``layer1.r.(t+1)``); ``counts`` (K, M) says how many of
  a run's classifiers are live. The loss of modality r uses the single learner's pure pieces
  (:func:`~mmrl_env.learners.boosting.residual_target`, :func:`~mmrl_env.learners.boosting.soft_ce`)
  with slot masks: the newest classifier is selected by a one-hot over slots, the earlier ones
  and the ensemble by 0/1 weights, so a dead slot contributes exact zeros to the forward and
  to every gradient. The forward stops at the widest live ensemble of the batch.
* Each slot (r, t) has its own optimizer group, gated per run by "slot live": a slot steps from
  the step after its activation, with the run's current lr (as the single learner's new param
  group), and activation zeroes that slot's optimizer state (momentum, Adam moments and step)
  for that run only.
* ACA is host control flow (:func:`~mmrl_env.learners.boosting.aca_decision` and
  :func:`~mmrl_env.learners.boosting.omega_target` per checking run, at its own epoch end);
  a new slot's weights are drawn from the run's own generator exactly as the single learner
  draws a new classifier. ω's network is stacked per run and refitted for the checking runs
  together: ``omega_steps`` ``vmap``-ed steps with a per-run gate, the optimizer state
  persisting across ACA calls as in the single learner.

Cost: the slots' memory is allocated up front (K × M × (max_classifiers − 1) Layer1s and
their optimizer state).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, grad_and_value, vmap

from mmrl_env.data.base import ModalitySpec, MultimodalDataset
from mmrl_env.engine.batch import VectorBatch, VectorPrediction, VectorStepOutput
from mmrl_env.engine.batchnorm import encode_rows
from mmrl_env.engine.joint import masked_batch_normalised_ce
from mmrl_env.engine.optim import StackedOptimizer
from mmrl_env.engine.stack import RunStack
from mmrl_env.engine.stacked import StackedLearner
from mmrl_env.learners.base import OptimConfig, auto_period, seeded_init
from mmrl_env.learners.boosting import (
    AUTO_ACA_FRACTION,
    PAPER_T,
    BoostingLearner,
    aca_decision,
    check_kwargs,
    omega_target,
    residual_target,
    soft_ce,
)
from mmrl_env.metrics import true_class_probability
from mmrl_env.models.boosting import BoostingNet, OmegaNet

log = logging.getLogger(__name__)


class SlotBoostingNet(BoostingNet):
    """``BoostingNet`` (same construction, so run k's initial weights are the single run's) plus
    ``max_classifiers − 1`` pre-allocated Layer1 slots per modality."""

    trim_rows = False  # set by the learner for the per-run loop (see ``encode_rows``)

    def __init__(self, modalities: tuple[ModalitySpec, ...], num_classes: int, hidden: int,
                 max_classifiers: int) -> None:
        super().__init__(modalities, num_classes, hidden)
        self.slots = nn.ModuleList(nn.ModuleList(nn.Linear(d, hidden) for _ in range(max_classifiers - 1))
                                   for d in self.dims)

    def forward(self, inputs: list[Tensor], widths: list[int], masks: Tensor | None = None,
                bn_stats: dict[str, Any] | None = None) -> list[Tensor]:
        """Per modality r, the (widths[r], N, C) logits of its first widths[r] classifiers."""
        out = []
        for r, x in enumerate(inputs):
            u = encode_rows(self.encoders[r], x, None if masks is None else masks[r], bn_stats, self.training,
                            self.trim_rows)
            layers = [self.layer1[r][0], *self.slots[r][: widths[r] - 1]]
            out.append(torch.stack([self.head(torch.relu(layer(u))) for layer in layers]))
        return out


def slot_weights(width: int, count: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """0/1 weights over ``width`` slots for one run with ``count`` live classifiers:
    (live, newest, earlier), each (width, 1, 1)."""
    t = torch.arange(width, device=count.device)
    shape = (width, 1, 1)
    return ((t < count).to(dtype).view(shape), (t == count - 1).to(dtype).view(shape),
            (t < count - 1).to(dtype).view(shape))


def ensemble(z: Tensor, count: Tensor, omega: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A modality's slot logits (W, N, C) -> ω-scaled (added classifiers), their live sum, the
    newest one, and the sum of the earlier ones (as the single learner's ``_logits``)."""
    z = torch.cat([z[:1], z[1:] * omega.to(z.dtype)])
    live, newest, earlier = slot_weights(z.shape[0], count, z.dtype)
    return z, (z * live).sum(0), (z * newest).sum(0), (z * earlier).sum(0)


class VectorBoostingLearner(StackedLearner):
    """K AUG runs; kwargs as :class:`~mmrl_env.learners.boosting.BoostingLearner`."""

    RENAMED_KWARGS: ClassVar[dict[str, str]] = BoostingLearner.RENAMED_KWARGS

    def __init__(self, dataset: MultimodalDataset, optim: OptimConfig, device: torch.device,
                 generators: Sequence[torch.Generator], residual_weight: float = 0.2, check_every: int | str = "auto",
                 sigma: float = 1.0, tau: float = 0.01, max_classifiers: int = 10, hidden: int = 256,
                 omega_target: str = "cover", omega_lr: float = 1e-3, omega_steps: int = 100) -> None:
        check_kwargs(max_classifiers, omega_target)
        self.check_every_arg = check_every
        self.check_every = auto_period(check_every, None, AUTO_ACA_FRACTION, PAPER_T, "check_every")
        self.residual_weight, self.sigma, self.tau, self.omega_rule = residual_weight, sigma, tau, omega_target
        self.max_classifiers, self.hidden, self.omega_steps = max_classifiers, hidden, omega_steps
        m = dataset.num_modalities
        super().__init__(lambda: SlotBoostingNet(dataset.modalities, dataset.num_classes, hidden, max_classifiers),
                         dataset, optim, device, generators)
        self.generators = list(generators)
        self.add_group("model", lambda n: not n.startswith("slots."))
        for r in range(m):
            for t in range(max_classifiers - 1):
                self.add_group(f"slot{r}.{t}", lambda n, r=r, t=t: n.startswith(f"slots.{r}.{t}."))
        self.omega_stack = RunStack(lambda: OmegaNet(m), generators, device)  # after the model, per generator
        self.omega_optimizer = StackedOptimizer(self.omega_stack.flat,
                                                OptimConfig(optim.name, omega_lr, optim.momentum, 0.0))
        self.omega_lr = torch.full((len(generators),), omega_lr, dtype=torch.float64, device=device)
        k = len(generators)
        self.counts = torch.ones(k, m, dtype=torch.long)  # live classifiers per run and modality (host)
        self.omega = torch.ones(k, m, device=device)  # Algorithm 2: ω initialised to 1
        self.score_sum = torch.zeros(k, m, device=device)
        self.score_count = torch.zeros(k, m, dtype=torch.long, device=device)
        self._train_fn = self.map_runs(grad_and_value(self._loss, has_aux=True), (0, 0, 0, 0, 0, 0, 0, None, None))
        self._omega_grad = vmap(grad(self._omega_loss), in_dims=(0, 0, 0))
        self._omega_forward = vmap(self._omega_apply, in_dims=(0, 0))

    def set_run_length(self, epochs: int, iterations_per_epoch: int) -> None:
        super().set_run_length(epochs, iterations_per_epoch)
        self.check_every = auto_period(self.check_every_arg, epochs, AUTO_ACA_FRACTION, PAPER_T, "check_every")

    def _reset_state(self, runs: list[int], generators: Sequence[torch.Generator]) -> None:
        idx = torch.as_tensor(runs, dtype=torch.long, device=self.device)
        for run, gen in zip(runs, generators, strict=True):
            self.omega_stack.rebuild(run, gen)  # after the model's draw, as the single learner
            self.generators[run] = gen
        self.omega_optimizer.reset_runs(idx)
        self.counts[runs] = 1
        self.omega[idx] = 1.0
        self.score_sum[idx] = 0.0
        self.score_count[idx] = 0

    @property
    def widths(self) -> list[int]:
        """Per modality, the most live classifiers of any run: the forward stops there."""
        return self.counts.amax(dim=0).tolist()

    # --- the step -------------------------------------------------------------------------
    def _loss(self, flat: Tensor, buffers: dict[str, Tensor], inputs: list[Tensor], labels: Tensor, masks: Tensor,
              counts: Tensor, omega: Tensor, batch_size: int, widths: list[int]
              ) -> tuple[Tensor, tuple[list[Tensor], Tensor, dict[str, Any]]]:
        """One run's AUG loss (eqs. 2–6 summed over modalities, masked rows and slots), under vmap."""
        stats: dict[str, Any] = {}
        with self._autocast():
            logits = functional_call(self.stack.template, (self.stack.unflatten(flat), buffers),
                                     (inputs, widths, masks, stats))
        loss = torch.zeros((), device=flat.device)
        summed, probs = [], []
        onehot = (labels.unsqueeze(-1) == torch.arange(self.dataset.num_classes, device=labels.device)).float()
        for r, (z, mask) in enumerate(zip(logits, masks, strict=True)):
            z, total, newest, earlier = ensemble(z, counts[r], omega[r])
            earlier_slots = slot_weights(z.shape[0], counts[r], torch.float32)[2]
            prev_probs = (z.detach().float().softmax(-1) * earlier_slots).sum(0)
            target = residual_target(onehot, prev_probs, self.residual_weight) * mask.unsqueeze(1)
            eps = soft_ce(newest, target, batch_size)
            eps_o = masked_batch_normalised_ce(total.float(), labels, mask, batch_size)
            eps_p = torch.where(counts[r] > 1,
                                masked_batch_normalised_ce(earlier.float(), labels, mask, batch_size), 0.0)
            loss = loss + (eps + eps_o + eps_p)
            zsum = total.detach().float()
            summed.append(zsum)
            probs.append((true_class_probability(zsum, labels) * mask).sum())
        return loss, (summed, torch.stack(probs), stats)

    def train_step(self, batch: VectorBatch) -> VectorStepOutput:
        """One update of every active run: the base group, and each live slot of each run."""
        self._set_training(True)
        active = batch.active
        counts = self.counts.to(self.device)
        widths = self.widths
        grads, (loss, (summed, probs, stats)) = self._train_fn(
            self.stack.flat, self.stack.buffers, batch.inputs, batch.labels, batch.masks, counts, self.omega,
            batch.batch_size, widths)
        self.step_group("model", grads, active)
        for r, width in enumerate(widths):
            for t in range(width - 1):  # classifier t + 1 of modality r: live where count > t + 1
                self.step_group(f"slot{r}.{t}", grads, active & (counts[:, r] > t + 1))
        self.update_batchnorm(stats, active)
        on = active.unsqueeze(1)
        self.score_sum = self.score_sum + torch.where(on, probs.to(self.score_sum.dtype), 0.0)
        self.score_count = self.score_count + batch.sizes * on
        return VectorStepOutput(loss.detach() * active, summed, active)

    # --- adaptive classifier assignment ---------------------------------------------------
    def scores(self) -> Tensor:
        """(K, M) OGM scores of each run's current check window (mean true-class probability)."""
        return self.score_sum / self.score_count.to(torch.float32).clamp(min=1)

    def on_epoch_end(self, runs: Tensor) -> None:
        """StepLR for the runs whose epoch ended; ACA for those at a multiple of T of their own epochs."""
        ended = runs.cpu().bool()
        checking = ended & ((self.epoch + 1) % self.check_every == 0)
        super().on_epoch_end(runs)
        if not checking.any():
            return
        scores = self.scores()
        host = scores.cpu()
        for k in checking.nonzero().flatten().tolist():
            for r in aca_decision(host[k], self.sigma, self.tau):
                if self._can_add(k, r):
                    self.add_classifier(k, r)
        self.fit_omega(checking, scores)
        reset = checking.to(self.device).unsqueeze(1)
        self.score_sum = torch.where(reset, 0.0, self.score_sum)
        self.score_count = torch.where(reset, 0, self.score_count)

    def _can_add(self, run: int, r: int) -> bool:
        if int(self.counts[run, r]) < self.max_classifiers:
            return True
        log.info("boosting (run %d): modality %s already has the maximum of %d classifiers; none added",
                 run, self.dataset.modality_names[r], self.max_classifiers)
        return False

    @torch.no_grad()
    def add_classifier(self, run: int, r: int) -> None:
        """Activate run ``run``'s next slot of modality r: weights drawn from the run's generator as the
        single learner draws a new classifier, that slot's optimizer state fresh for this run only."""
        t = int(self.counts[run, r]) - 1  # slot index of the new classifier
        ref = self.stack.params["head.weight"]
        with seeded_init(self.generators[run]):
            layer = nn.Linear(self.stack.template.dims[r], self.hidden).to(device=ref.device, dtype=ref.dtype)
        self.stack.params[f"slots.{r}.{t}.weight"][run].copy_(layer.weight)
        self.stack.params[f"slots.{r}.{t}.bias"][run].copy_(layer.bias)
        self.groups[f"slot{r}.{t}"].reset_runs(torch.tensor([run], device=self.device))
        self.counts[run, r] += 1

    def _omega_apply(self, flat: Tensor, s: Tensor) -> Tensor:
        return functional_call(self.omega_stack.template, self.omega_stack.unflatten(flat), (s,))

    def _omega_loss(self, flat: Tensor, s: Tensor, g: Tensor) -> Tensor:
        return ((g - self._omega_apply(flat, s)) ** 2).sum()

    def fit_omega(self, runs: Tensor, scores: Tensor) -> None:
        """Refit ω for the runs where ``runs`` (K,) is true: ``omega_steps`` steps on ‖g − ω(s)‖²,
        g from :func:`omega_target` after this call's additions; store ω(s)."""
        s = scores.detach().float()
        g = torch.zeros_like(s)
        for k in runs.nonzero().flatten().tolist():
            g[k] = omega_target(s[k], self.counts[k].tolist(), self.omega_rule, self.sigma, self.tau)
        x = s.to(self.omega_stack.flat.dtype)
        gate = runs.to(self.device)
        for _ in range(self.omega_steps):
            self.omega_optimizer.step(self.omega_stack.flat, self._omega_grad(self.omega_stack.flat, x, g),
                                      self.omega_lr, gate)
        with torch.no_grad():
            fitted = self._omega_forward(self.omega_stack.flat, x)
        self.omega = torch.where(gate.unsqueeze(1), fitted.to(self.omega.dtype), self.omega)

    # --- prediction, reporting, checkpoints -----------------------------------------------
    @torch.no_grad()
    def predict(self, inputs: list[Tensor], per_run: bool = False) -> VectorPrediction:
        """Every run's unimodal logits (its live, ω-weighted classifiers summed) and their sum."""
        self._set_training(False)
        forward = self._predict_fn(per_run, 0, 0, None)  # counts and ω per run, widths shared
        uni = forward(self.stack.flat, self.stack.buffers, inputs, self.counts.to(self.device), self.omega, self.widths)
        return VectorPrediction(torch.stack(uni).sum(0), uni, None)

    def _forward(self, flat: Tensor, buffers: dict[str, Tensor], inputs: list[Tensor], counts: Tensor,
                 omega: Tensor, widths: list[int]) -> list[Tensor]:
        with self._autocast():
            logits = functional_call(self.stack.template, (self.stack.unflatten(flat), buffers), (inputs, widths))
        return [ensemble(z, counts[r], omega[r])[1].float() for r, z in enumerate(logits)]

    def run_info(self, run: int) -> dict[str, Any]:
        names = self.dataset.modality_names
        return {"classifiers": dict(zip(names, self.counts[run].tolist(), strict=True)),
                "omega": dict(zip(names, self.omega[run].tolist(), strict=True))}

    def run_state_dict(self, run: int) -> dict[str, Tensor]:
        """Run ``run``'s weights under the single model's names (live classifiers only)."""
        out = {}
        for name, t in {**self.stack.params, **self.stack.buffers}.items():
            if name.startswith("slots."):
                _, r, slot, leaf = name.split(".")
                if int(slot) + 1 >= int(self.counts[run, int(r)]):
                    continue
                name = f"layer1.{r}.{int(slot) + 1}.{leaf}"
            out[name] = t[run].clone()
        return out

    def _extra_state(self) -> dict[str, Any]:
        return {"counts": self.counts.clone(), "omega": self.omega.clone(),
                "omega_params": self.omega_stack.flat.clone(), "omega_optimizer": self.omega_optimizer.state_dict(),
                "score_sum": self.score_sum.clone(), "score_count": self.score_count.clone()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.counts.copy_(state["counts"])
        self.omega = state["omega"].to(self.device).clone()
        with torch.no_grad():
            self.omega_stack.flat.copy_(state["omega_params"])
        self.omega_optimizer.load_state_dict(state["omega_optimizer"])
        self.score_sum = state["score_sum"].to(self.device).clone()
        self.score_count = state["score_count"].to(self.device).clone()
