"""``boosting``: AUG — sustained boosting with adaptive classifier assignment (AUG paper §4), for K runs.

Each modality is an ensemble of configurable classifiers over its encoder; the newest one
fits the residual of the earlier ones while the whole ensemble keeps fitting the labels
(paper eqs. 2–6). Every T epochs ACA compares the modalities' OGM scores and gives the
lagging modality one more classifier, which directly adds classification capacity where
the imbalance is; a small network ω turns the scores into weights of the added classifiers.

ω's target (``omega_target``). The paper's g is the one-hot of the weakest modality, written
for two modalities where ACA keeps feeding the same weak one. Fitted to convergence, that
target sets ω ≈ 0 for every other modality, which switches off (forward AND gradient) the
classifiers ACA added to a lagging-but-not-weakest modality (M > 2), or to the formerly weak
modality once the order flips (M = 2). ``"cover"`` keeps g = 1 on every lagging modality (the
weakest and, for M > 2, each one ACA would give a classifier) and gives a leading modality that
owns added classifiers g = s_min / s_r ∈ (0, 1): damped by how far it leads, never off. While no
such flip happens it equals the paper's rule. ``"onehot"`` (default) is the paper's literal g:
on Synthetic's validation split, over seeds other than the benchmark's, ``cover`` was not better
(−0.3 [−0.8, +0.2] fused points, BENCHMARKS.md "ω target, decided on validation"), so the
paper's rule stays the default.

Dynamic classifier counts across K runs (run k = one inner run with its own seed), solved with
slots and masks:

* Every run's model pre-allocates ``max_classifiers − 1`` extra Layer1 slots per modality
  (``slots.r.t`` is classifier t + 2 of modality r; :meth:`BoostingLearner.run_state_dict`
  names it ``layer1.r.(t+1)``); ``counts`` (K, M) says how many of a run's classifiers are
  live. The loss of modality r (:func:`boosting_losses`) selects the newest classifier by a
  one-hot over slots and the earlier ones and the ensemble by 0/1 weights, so a dead slot
  contributes exact zeros to the forward and to every gradient. The forward stops at the
  widest live ensemble of the batch.
* Each slot (r, t) has its own optimizer group, gated per run by "slot live": a slot steps from
  the step after its activation, with the run's current lr, and activation zeroes that slot's
  optimizer state (momentum, Adam moments and step) for that run only.
* ACA is host control flow (:func:`aca_decision` and :func:`omega_target` per checking run, at
  its own epoch end); a new slot's weights are drawn from the run's own generator. ω's network
  is stacked per run and refitted for the checking runs together: ``omega_steps`` ``vmap``-ed
  steps with a per-run gate, its optimizer state persisting across ACA calls.

Cost: the slots' memory is allocated up front (K × M × (max_classifiers − 1) Layer1s and
their optimizer state).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, grad_and_value, vmap

from mmrl_env.data.base import ModalitySpec, MultimodalDataset
from mmrl_env.engine.batch import VectorBatch, VectorPrediction, VectorStepOutput
from mmrl_env.engine.batchnorm import encode_rows
from mmrl_env.engine.optim import OptimConfig, StackedOptimizer
from mmrl_env.engine.stack import RunStack, prefixed, seeded_init
from mmrl_env.learners.base import StackedLearner, auto_period
from mmrl_env.learners.joint import masked_batch_normalised_ce
from mmrl_env.metrics import true_class_probability
from mmrl_env.models.boosting import BoostingNet, OmegaNet

log = logging.getLogger(__name__)

def residual_target(onehot: Tensor, prev_probs: Tensor, residual_weight: float) -> Tensor:
    """ŷ = y − λ·y ⊙ p (eq. 1), p (N, K) = softmax(Σ_{j<t} z_j), the prediction of the ensemble of the
    earlier classifiers (SPEC §5, as the release's ``train_CREMAD.py``), zeros for the first classifier.
    With λ ∈ [0, 1] the target's true-class entry stays in [1 − λ, 1] however many classifiers precede."""
    return onehot - residual_weight * onehot * prev_probs


def soft_ce(logits: Tensor, target: Tensor, batch_size: int) -> Tensor:
    """−Σ_i ŷ_iᵀ log softmax(z_i), divided by the reference batch size B (as ``masked_batch_normalised_ce``)."""
    return -(target * logits.float().log_softmax(-1)).sum() / batch_size


def aca_decision(scores: Tensor, sigma: float = 1.0, tau: float = 0.01, rule: str = "paper") -> list[int]:
    """Modalities that get a classifier, from the window's OGM scores (Algorithm 1).

    ``paper``, M = 2: s^a − σ·s^v > τ → modality 1 (v); < −τ → modality 0 (a); else none.
    ``release`` (``train_CREMAD.py``), M = 2: the ratio s^a / s^v against σ ± τ (σ = 1, τ = 0.01).
    M > 2 (our rule; docs/design.md, "Inner learners"): every modality whose score is below the mean
    of the others by more than τ (``paper``), or whose score over that mean is below σ − τ
    (``release``).
    """
    s = [float(x) for x in scores.tolist()]
    m = len(s)
    others = [(sum(s) - x) / (m - 1) for x in s]
    if rule == "release":
        if m == 2:
            ratio = s[0] / max(s[1], 1e-8)
            return [1] if ratio > sigma + tau else [0] if ratio < sigma - tau else []
        return [r for r, x in enumerate(s) if x / max(others[r], 1e-8) < sigma - tau]
    if m == 2:
        diff = s[0] - sigma * s[1]
        return [1] if diff > tau else [0] if diff < -tau else []
    return [r for r, x in enumerate(s) if others[r] - x > tau]


def is_check_epoch(epoch: int, period: int, rule: str = "paper", epochs: int | None = None) -> bool:
    """Whether ACA checks after 0-based ``epoch`` of a run of ``epochs``: after every T-th epoch
    (paper), and also after the first one (``release``); never after the run's last epoch, where
    a classifier added would never train (when the run length is known)."""
    if epochs is not None and epoch + 1 >= epochs:
        return False
    return (epoch + 1) % period == 0 or (rule == "release" and epoch == 0)


def trained_additions(epochs: int, period: int, rule: str = "paper") -> int:
    """How many classifiers ACA can add, and train, in a run of ``epochs`` with period T: the
    count of check epochs (the most one modality can get; the cap ``max_classifiers`` aside)."""
    return sum(is_check_epoch(e, period, rule, epochs) for e in range(epochs))


OMEGA_TARGETS = ("cover", "onehot")
RULES = ("paper", "release")  # ``first_loss`` and ``aca_rule``: the paper's rule or the authors' code's
# "auto" T: a fifth of the run, so that ACA acts 4 times in the short runs "auto" is meant for (8 epochs: T = 2).
# Not the paper's ratio: its CREMA-D setting is T = 20 of 200 epochs, a tenth (the release sets T = epochs / 10).
AUTO_ACA_FRACTION = 0.2
PAPER_T = 20  # "auto" before the run length is known (a learner built outside a trainer)


def omega_target(scores: Tensor, counts: list[int], rule: str = "cover", sigma: float = 1.0,
                 tau: float = 0.01, aca_rule: str = "paper") -> Tensor:
    """ω's regression target g from the window's scores and the classifier counts (module docstring).

    ``onehot``: g = one-hot of the weakest modality (paper). ``cover``: g_r = 1 for every lagging
    modality (the weakest, plus :func:`aca_decision`'s picks), s_min/s_r for a leading modality that
    owns added classifiers, 0 for a leading one that owns none (its ω is unused).
    """
    s = scores.detach().float()
    weakest = int(s.argmin())
    g = nn.functional.one_hot(torch.tensor(weakest, device=s.device), s.numel()).float()
    if rule == "onehot":
        return g
    lagging = {weakest, *aca_decision(s, sigma, tau, aca_rule)}
    for r, count in enumerate(counts):
        if r in lagging:
            g[r] = 1.0
        elif count > 1:
            g[r] = s[weakest] / s[r].clamp(min=1e-8)
    return g


def check_kwargs(max_classifiers: int, omega_target: str, residual_weight: float = 0.2, first_loss: str = "paper",
                 aca_rule: str = "paper", fusion_weights: Sequence[float] | None = None,
                 num_modalities: int | None = None) -> None:
    """The keyword arguments as :class:`BoostingLearner` accepts them (a clear error otherwise)."""
    if max_classifiers < 1:
        raise ValueError(f"max_classifiers must be >= 1, got {max_classifiers}")
    if omega_target not in OMEGA_TARGETS:
        raise ValueError(f"omega_target must be one of {OMEGA_TARGETS}, got {omega_target!r}")
    if not 0.0 <= residual_weight <= 1.0:
        raise ValueError(f"residual_weight (λ) must be in [0, 1] (AUG eq. 1), got {residual_weight}")
    for name, value in (("first_loss", first_loss), ("aca_rule", aca_rule)):
        if value not in RULES:
            raise ValueError(f"{name} must be one of {RULES}, got {value!r}")
    if fusion_weights is not None and num_modalities is not None and len(fusion_weights) != num_modalities:
        raise ValueError(f"fusion_weights needs one weight per modality ({num_modalities}), got {list(fusion_weights)}")


class SlotBoostingNet(BoostingNet):
    """``BoostingNet`` (encoders, the first Layer1 per modality, the shared head) plus
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
            out.append(torch.stack([self.head(torch.relu(layer(u))) for layer in self.classifiers(r, widths[r])]))
        return out

    def classifiers(self, r: int, width: int) -> list[nn.Module]:
        """Modality r's first ``width`` Layer1 classifiers: its own, then the slots. (``layer1[r]`` and
        ``slots[r]`` are ``nn.ModuleList`` s; torch types a list's items as plain modules, hence the casts.)"""
        own, slots = cast(nn.ModuleList, self.layer1[r]), cast(nn.ModuleList, self.slots[r])
        return [own[0], *slots[: width - 1]]


def slot_weights(width: int, count: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """0/1 weights over ``width`` slots for one run with ``count`` live classifiers:
    (live, newest, earlier), each (width, 1, 1)."""
    t = torch.arange(width, device=count.device)
    shape = (width, 1, 1)
    return ((t < count).to(dtype).view(shape), (t == count - 1).to(dtype).view(shape),
            (t < count - 1).to(dtype).view(shape))


def ensemble(z: Tensor, count: Tensor, omega: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A modality's slot logits (W, N, C) -> ω-scaled (added classifiers), their live sum, the
    newest one, and the sum of the earlier ones."""
    z = torch.cat([z[:1], z[1:] * omega.to(z.dtype)])
    live, newest, earlier = slot_weights(z.shape[0], count, z.dtype)
    return z, (z * live).sum(0), (z * newest).sum(0), (z * earlier).sum(0)


def boosting_losses(z: Tensor, count: Tensor, omega: Tensor, labels: Tensor, mask: Tensor, residual_weight: float,
                    batch_size: int, first_once: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(ε, ε_o, ε_p) of one modality of one run (eqs. 2–4), and its ensemble's logits.

    ``z`` (W, N, C): the logits of the modality's W classifier slots, of which the first
    ``count`` are live (the added ones scaled by ``omega``); only the rows where ``mask`` is 1
    count. ε: the newest classifier vs the residual labels; ε_o: the live ones summed vs y;
    ε_p: the earlier ones summed vs y (0 when ``count`` is 1). With one classifier ε and ε_o are
    the same CE, counted twice as eq. 5 reads; ``first_once`` counts it once (ε = 0), as the release.
    """
    z, total, newest, earlier = ensemble(z, count, omega)
    prev_probs = torch.where(count > 1, earlier.detach().float().softmax(-1), 0.0)  # the earlier ensemble's p
    onehot = (labels.unsqueeze(-1) == torch.arange(z.shape[-1], device=labels.device)).float()
    target = residual_target(onehot, prev_probs, residual_weight) * mask.unsqueeze(1)
    eps = soft_ce(newest, target, batch_size)
    if first_once:
        eps = torch.where(count > 1, eps, torch.zeros_like(eps))
    eps_o = masked_batch_normalised_ce(total.float(), labels, mask, batch_size)
    eps_p = torch.where(count > 1, masked_batch_normalised_ce(earlier.float(), labels, mask, batch_size), 0.0)
    return eps, eps_o, eps_p, total


def forked(generator: torch.Generator) -> torch.Generator:
    """A copy of a run's generator for the ω network's initial weights: building ω leaves the
    run's own stream untouched, so on a given seed boosting draws the same first data order as
    every other learner (common random numbers across learners, as ``evaluate.py --learners``
    compares them)."""
    copy = torch.Generator(device=generator.device)
    copy.set_state(generator.get_state())
    return copy


class BoostingLearner(StackedLearner):
    """K AUG runs. Unimodal logits = Σ_t ω-weighted classifier logits; inference = their late-fusion sum.

    ``residual_weight`` (λ ∈ [0, 1], residual softening), ``check_every`` (ACA period T in epochs;
    ``"auto"`` = ``AUTO_ACA_FRACTION`` of the run, so ACA acts in short runs too; 20 until a trainer
    tells the run length), ``sigma``, ``tau``, ``max_classifiers`` (cap per modality), ``hidden``
    (Layer1 width), ``omega_target`` (``onehot``, the paper's, or ``cover``; module docstring), ``omega_lr`` /
    ``omega_steps`` (ω's optimiser at each ACA call; the paper trains it "until convergence"
    with the backbone's optimiser type).

    Where the authors' code differs from the paper, the paper's rule is the default and the code's
    is a switch (docs/design.md, "AUG: the paper and the release"): ``first_loss`` (``"release"``: the CE of
    a lone classifier counted once), ``aca_rule`` (``"release"``: ratio s^a/s^v against σ ± τ on the
    last epoch's scores, checked after the first epoch too), ``step_per_modality`` (one optimizer
    step per modality per batch, in modality order, the shared head stepping in each), and
    ``fusion_weights`` (fixed late-fusion weights per modality; the release's CREMA-D: 0.4, 0.6).

    A classifier votes in :meth:`predict` only after it has trained for one step (``trained``), and
    no ACA check runs after the run's last epoch: no untrained classifier is ever scored.
    """

    # keyword removed before 1.0 -> its replacement; named in check_learner's error
    REMOVED_KWARGS: ClassVar[dict[str, str]] = {"lam": "residual_weight"}

    def __init__(self, dataset: MultimodalDataset, optim: OptimConfig, device: torch.device,
                 generators: Sequence[torch.Generator], residual_weight: float = 0.2, check_every: int | str = "auto",
                 sigma: float = 1.0, tau: float = 0.01, max_classifiers: int = 10, hidden: int = 256,
                 omega_target: str = "onehot", omega_lr: float = 1e-3, omega_steps: int = 100,
                 first_loss: str = "paper", aca_rule: str = "paper", step_per_modality: bool = False,
                 fusion_weights: Sequence[float] | None = None) -> None:
        m = dataset.num_modalities
        check_kwargs(max_classifiers, omega_target, residual_weight, first_loss, aca_rule, fusion_weights, m)
        self.check_every_arg = check_every
        self.check_every = auto_period(check_every, None, AUTO_ACA_FRACTION, PAPER_T, "check_every")
        self.residual_weight, self.sigma, self.tau, self.omega_rule = residual_weight, sigma, tau, omega_target
        self.max_classifiers, self.hidden, self.omega_steps = max_classifiers, hidden, omega_steps
        self.first_once, self.aca_rule, self.step_per_modality = first_loss == "release", aca_rule, step_per_modality
        self.fusion_weights = None if fusion_weights is None else [float(w) for w in fusion_weights]
        super().__init__(lambda: SlotBoostingNet(dataset.modalities, dataset.num_classes, hidden, max_classifiers),
                         dataset, optim, device, generators)
        self.generators = list(generators)
        if step_per_modality:  # the release: encoder r and its Layer1s step with modality r's loss, the head with each
            for r in range(m):
                self.add_group(f"modality{r}", prefixed(f"encoders.{r}.", f"layer1.{r}."))
            self.add_group("head", lambda n: n.startswith("head."))
        else:
            self.add_group("model", lambda n: not n.startswith("slots."))
        for r in range(m):
            for t in range(max_classifiers - 1):
                self.add_group(f"slot{r}.{t}", prefixed(f"slots.{r}.{t}."))
        self.omega_stack = RunStack(lambda: OmegaNet(m), [forked(g) for g in generators], device)
        self.omega_optimizer = StackedOptimizer(self.omega_stack.flat,
                                                OptimConfig(optim.name, omega_lr, optim.momentum, 0.0))
        self.omega_lr = torch.full((len(generators),), omega_lr, dtype=torch.float64, device=device)
        k = len(generators)
        self.counts = torch.ones(k, m, dtype=torch.long)  # live classifiers per run and modality (host)
        self.trained = torch.ones(k, m, dtype=torch.long)  # of those, the ones that have stepped: they vote (host)
        self.omega = torch.ones(k, m, device=device)  # Algorithm 2: ω initialised to 1
        self.score_sum = torch.zeros(k, m, device=device)
        self.score_count = torch.zeros(k, m, dtype=torch.long, device=device)
        self._train_fn = self.map_runs(grad_and_value(self._loss, has_aux=True),
                                       (0, 0, 0, 0, 0, 0, 0, None, None, None))
        self._omega_grad = vmap(grad(self._omega_loss), in_dims=(0, 0, 0))
        self._omega_forward = vmap(self._omega_apply, in_dims=(0, 0))

    def set_run_length(self, epochs: int, iterations_per_epoch: int) -> None:
        super().set_run_length(epochs, iterations_per_epoch)
        self.check_every = auto_period(self.check_every_arg, epochs, AUTO_ACA_FRACTION, PAPER_T, "check_every")

    def _reset_state(self, runs: list[int], generators: Sequence[torch.Generator]) -> None:
        idx = torch.as_tensor(runs, dtype=torch.long, device=self.device)
        for run, gen in zip(runs, generators, strict=True):
            self.omega_stack.rebuild(run, forked(gen))
            self.generators[run] = gen
        self.omega_optimizer.reset_runs(idx)
        self.counts[runs] = 1
        self.trained[runs] = 1
        self.omega[idx] = 1.0
        self.score_sum[idx] = 0.0
        self.score_count[idx] = 0

    @property
    def widths(self) -> list[int]:
        """Per modality, the most live classifiers of any run: the forward stops there."""
        return self.counts.amax(dim=0).tolist()

    # --- the step -------------------------------------------------------------------------
    def _loss(self, flat: Tensor, buffers: dict[str, Tensor], inputs: list[Tensor], labels: Tensor, masks: Tensor,
              counts: Tensor, omega: Tensor, batch_size: int, widths: list[int], only: int | None
              ) -> tuple[Tensor, tuple[list[Tensor], Tensor, dict[str, Any]]]:
        """One run's AUG loss (eqs. 2–6 summed over modalities, masked rows and slots; modality
        ``only``'s alone when given), mapped over the runs."""
        stats: dict[str, Any] = {}
        logits = self._run_model(flat, buffers, inputs, widths, masks, stats)
        loss = torch.zeros((), device=flat.device)
        summed, probs = [], []
        for r, (z, mask) in enumerate(zip(logits, masks, strict=True)):
            eps, eps_o, eps_p, total = boosting_losses(z, counts[r], omega[r], labels, mask, self.residual_weight,
                                                       batch_size, self.first_once)
            if only is None or only == r:
                loss = loss + (eps + eps_o + eps_p)
            zsum = total.detach().float()
            summed.append(zsum)
            probs.append((true_class_probability(zsum, labels) * mask).sum())
        return loss, (summed, torch.stack(probs), stats)

    def train_step(self, batch: VectorBatch) -> VectorStepOutput:
        """One update of every active run: the base group, and each live slot of each run (with
        ``step_per_modality``, one such update per modality, in order)."""
        self._set_training(True)
        active = batch.active
        counts = self.counts.to(self.device, non_blocking=True)  # host copy: no wait for the GPU
        widths = self.widths
        if self.step_per_modality:
            loss, summed, probs = self._step_per_modality(batch, counts, widths)
        else:
            grads, (loss, (summed, probs, stats)) = self._train_fn(
                self.stack.flat, self.stack.buffers, batch.inputs, batch.labels, batch.masks, counts, self.omega,
                batch.batch_size, widths, None)
            self.step_group("model", grads, active)
            for r in range(len(widths)):
                self._step_slots(r, widths[r], grads, active, counts)
            self.update_batchnorm(stats, active)
        fed = batch.host_sizes if batch.host_sizes is not None else batch.sizes.cpu()
        self.trained = torch.where(fed > 0, self.counts, self.trained)  # a fed modality's live classifiers all stepped
        on = active.unsqueeze(1)
        self.score_sum = self.score_sum + torch.where(on, probs.to(self.score_sum.dtype), 0.0)
        self.score_count = self.score_count + batch.sizes * on
        return VectorStepOutput(loss.detach() * active, summed, active)

    def _step_slots(self, r: int, width: int, grads: Tensor, active: Tensor, counts: Tensor) -> None:
        for t in range(width - 1):  # classifier t + 1 of modality r: live where count > t + 1
            self.step_group(f"slot{r}.{t}", grads, active & (counts[:, r] > t + 1))

    def _step_per_modality(self, batch: VectorBatch, counts: Tensor, widths: list[int]
                           ) -> tuple[Tensor, list[Tensor], Tensor]:
        """The release's update: modality r's loss alone, its gradient, its step (encoder r, its
        classifiers, the shared head), then the next modality's loss at the updated head. Each
        modality's logits and scores come from its own pass."""
        active = batch.active
        loss, summed, probs = torch.zeros_like(active, dtype=torch.float32), [], []
        for r in range(len(widths)):
            grads, (loss_r, (summed_r, probs_r, stats)) = self._train_fn(
                self.stack.flat, self.stack.buffers, batch.inputs, batch.labels, batch.masks, counts, self.omega,
                batch.batch_size, widths, r)
            self.step_group(f"modality{r}", grads, active)
            self.step_group("head", grads, active)
            self._step_slots(r, widths[r], grads, active, counts)
            self.update_batchnorm({k: v for k, v in stats.items() if k.startswith(f"encoders.{r}.")}, active)
            loss = loss + loss_r.float()
            summed.append(summed_r[r])
            probs.append(probs_r[:, r])
        return loss, summed, torch.stack(probs, dim=1)

    # --- adaptive classifier assignment ---------------------------------------------------
    def scores(self) -> Tensor:
        """(K, M) OGM scores of each run's current check window (mean true-class probability)."""
        return self.score_sum / self.score_count.to(torch.float32).clamp(min=1)

    def on_epoch_end(self, runs: Tensor) -> None:
        """StepLR for the runs whose epoch ended; ACA for those at a check epoch of their own
        (:func:`is_check_epoch`). The ``release`` rule scores the last epoch only: its window
        restarts at every epoch end."""
        ended = runs.cpu().bool()
        checking = ended & torch.tensor([is_check_epoch(int(e), self.check_every, self.aca_rule, self.run_epochs)
                                         for e in self.epoch], dtype=torch.bool)
        super().on_epoch_end(runs)
        if checking.any():
            self.assign(checking, self.scores())
        window_ends = ended if self.aca_rule == "release" else checking
        if not window_ends.any():
            return
        reset = window_ends.to(self.device).unsqueeze(1)
        self.score_sum = torch.where(reset, 0.0, self.score_sum)
        self.score_count = torch.where(reset, 0, self.score_count)

    def assign(self, runs: Tensor, scores: Tensor) -> list[list[int]]:
        """One ACA call for the runs where ``runs`` (K,) is true, from their window's ``scores`` (K, M):
        add classifiers per :func:`aca_decision` (up to ``max_classifiers``), then refit ω.
        Returns each run's added modalities ([] for the others)."""
        host = scores.detach().cpu()
        added: list[list[int]] = [[] for _ in range(self.num_runs)]
        for k in runs.cpu().nonzero().flatten().tolist():
            for r in aca_decision(host[k], self.sigma, self.tau, self.aca_rule):
                if self._can_add(k, r):
                    self.add_classifier(k, r)
                    added[k].append(r)
        self.fit_omega(runs, scores)
        return added

    def _can_add(self, run: int, r: int) -> bool:
        if int(self.counts[run, r]) < self.max_classifiers:
            return True
        log.info("boosting (run %d): modality %s already has the maximum of %d classifiers; none added",
                 run, self.dataset.modality_names[r], self.max_classifiers)
        return False

    @torch.no_grad()
    def add_classifier(self, run: int, r: int) -> None:
        """Activate run ``run``'s next slot of modality r: fresh ``nn.Linear`` weights drawn from the run's
        generator, that slot's optimizer state fresh for this run only."""
        t = int(self.counts[run, r]) - 1  # slot index of the new classifier
        ref = self.stack.params["head.weight"]
        in_features = self.stack.params[f"slots.{r}.{t}.weight"].shape[-1]  # modality r's feature size
        with seeded_init(self.generators[run]):
            layer = nn.Linear(in_features, self.hidden).to(device=ref.device, dtype=ref.dtype)
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
            g[k] = omega_target(s[k], self.counts[k].tolist(), self.omega_rule, self.sigma, self.tau, self.aca_rule)
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
        """Every run's unimodal logits (its trained, ω-weighted classifiers summed: one added at
        the last check votes once it has stepped) and their sum (weighted by ``fusion_weights``)."""
        self._set_training(False)
        forward = self._predict_fn(per_run, 0, 0, None)  # counts and ω per run, widths shared
        uni = forward(self.stack.flat, self.stack.buffers, inputs, self.trained.to(self.device), self.omega,
                      self.widths)
        weights = self.fusion_weights or [1.0] * len(uni)
        return VectorPrediction(sum(w * z for w, z in zip(weights, uni, strict=True)), uni, None)

    def _forward(self, flat: Tensor, buffers: dict[str, Tensor], inputs: list[Tensor], counts: Tensor,
                 omega: Tensor, widths: list[int]) -> list[Tensor]:
        logits = self._run_model(flat, buffers, inputs, widths)
        return [ensemble(z, counts[r], omega[r])[1].float() for r, z in enumerate(logits)]

    def run_info(self, run: int) -> dict[str, Any]:
        names = self.dataset.modality_names
        return {"classifiers": dict(zip(names, self.counts[run].tolist(), strict=True)),
                "omega": dict(zip(names, self.omega[run].tolist(), strict=True))}

    def run_state_dict(self, run: int) -> dict[str, Tensor]:
        """Run ``run``'s weights as a plain ``BoostingNet`` with its live classifiers names them
        (classifier t + 1 of modality r is ``layer1.r.t``; dead slots left out)."""
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
        return {"counts": self.counts.clone(), "trained": self.trained.clone(), "omega": self.omega.clone(),
                "omega_params": self.omega_stack.flat.clone(), "omega_optimizer": self.omega_optimizer.state_dict(),
                "score_sum": self.score_sum.clone(), "score_count": self.score_count.clone()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.counts.copy_(state["counts"])
        self.trained.copy_(state.get("trained", state["counts"]))  # snapshots from before ``trained``: all voted
        self.omega = state["omega"].to(self.device).clone()
        with torch.no_grad():
            self.omega_stack.flat.copy_(state["omega_params"])
        self.omega_optimizer.load_state_dict(state["omega_optimizer"])
        self.score_sum = state["score_sum"].to(self.device).clone()
        self.score_count = state["score_count"].to(self.device).clone()
