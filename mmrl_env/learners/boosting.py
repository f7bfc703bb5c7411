"""``boosting``: AUG — sustained boosting with adaptive classifier assignment (AUG paper §4).

Each modality is an ensemble of configurable classifiers over its encoder; the newest one
fits the residual of the earlier ones while the whole ensemble keeps fitting the labels
(paper eqs. 2–6). Every T epochs ACA compares the modalities' OGM scores and gives the
lagging modality one more classifier, which directly adds classification capacity where
the imbalance is; a small network ω turns the scores into weights of the added classifiers.

ω's target (``omega_target``). The paper's g is the one-hot of the weakest modality, written
for two modalities where ACA keeps feeding the same weak one. Fitted to convergence, that
target sets ω ≈ 0 for every other modality, which switches off (forward AND gradient) the
classifiers ACA added to a lagging-but-not-weakest modality (M > 2), or to the formerly weak
modality once the order flips (M = 2). ``"cover"`` (default) keeps g = 1 on every lagging
modality (the weakest and, for M > 2, each one ACA would give a classifier) and gives a
leading modality that owns added classifiers g = s_min / s_r ∈ (0, 1): damped by how far it
leads, never off. While no such flip happens it equals the paper's rule. ``"onehot"`` is the
paper's literal g. Measured on Synthetic (BENCHMARKS.md, learners).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmrl_env.learners.base import (
    Batch,
    Learner,
    OptimConfig,
    Prediction,
    StepOutput,
    auto_period,
    batch_normalised_ce,
    make_optimizer,
    seeded_init,
)
from mmrl_env.metrics import true_class_probability
from mmrl_env.models.boosting import BoostingNet, OmegaNet

log = logging.getLogger(__name__)


def residual_labels(onehot: Tensor, prev_logits: Tensor, residual_weight: float) -> Tensor:
    """ŷ_t = y − λ·Σ_{j<t} y ⊙ softmax(z_j) (eq. before 2), from detached earlier logits.

    ``prev_logits``: (t−1, N, K). Clamped at 0 so that the label stays non-negative even
    when many confident earlier classifiers sum past 1/λ (the paper's stated intent).
    """
    if prev_logits.shape[0] == 0:
        return onehot
    return residual_target(onehot, prev_logits.detach().float().softmax(-1).sum(0), residual_weight)


def residual_target(onehot: Tensor, prev_probs: Tensor, residual_weight: float) -> Tensor:
    """ŷ = (y − λ·y ⊙ p).clamp(min=0) from p, the summed softmax of the earlier classifiers (N, K)."""
    return (onehot - residual_weight * onehot * prev_probs).clamp(min=0)


def soft_ce(logits: Tensor, target: Tensor, batch_size: int) -> Tensor:
    """−Σ_i ŷ_iᵀ log softmax(z_i), divided by the reference batch size B (as ``batch_normalised_ce``)."""
    return -(target * logits.float().log_softmax(-1)).sum() / batch_size


def boosting_losses(logits: Tensor, labels: Tensor, residual_weight: float,
                    batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """(ε, ε_o, ε_p) of one modality whose t classifiers gave ``logits`` (t, N, K), eqs. 2–4.

    ε: newest classifier vs the residual labels; ε_o: all t summed vs y; ε_p: the first t−1
    summed vs y (0 when t = 1).
    """
    t = logits.shape[0]
    onehot = nn.functional.one_hot(labels, logits.shape[-1]).float()
    eps = soft_ce(logits[-1], residual_labels(onehot, logits[:-1], residual_weight), batch_size)
    eps_o = batch_normalised_ce(logits.sum(0).float(), labels, batch_size)
    eps_p = batch_normalised_ce(logits[:-1].sum(0).float(), labels, batch_size) if t > 1 else eps_o.new_zeros(())
    return eps, eps_o, eps_p


def aca_decision(scores: Tensor, sigma: float = 1.0, tau: float = 0.01) -> list[int]:
    """Modalities that get a classifier, from the window's OGM scores (Algorithm 1).

    M = 2 (paper): s^a − σ·s^v > τ → modality 1 (v); < −τ → modality 0 (a); else none.
    M > 2 (our rule; README "The inner learners"): every modality whose score is below the mean
    of the others by more than τ.
    """
    s = [float(x) for x in scores.tolist()]
    if len(s) == 2:
        diff = s[0] - sigma * s[1]
        return [1] if diff > tau else [0] if diff < -tau else []
    total = sum(s)
    return [r for r, x in enumerate(s) if (total - x) / (len(s) - 1) - x > tau]


OMEGA_TARGETS = ("cover", "onehot")
AUTO_ACA_FRACTION = 0.2  # "auto" T: a fifth of the run, the paper's CREMA-D ratio (T = 20 of 100 epochs)
PAPER_T = 20  # "auto" before the run length is known (a learner built outside a trainer)


def omega_target(scores: Tensor, counts: list[int], rule: str = "cover", sigma: float = 1.0,
                 tau: float = 0.01) -> Tensor:
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
    lagging = {weakest, *aca_decision(s, sigma, tau)}
    for r, count in enumerate(counts):
        if r in lagging:
            g[r] = 1.0
        elif count > 1:
            g[r] = s[weakest] / s[r].clamp(min=1e-8)
    return g


def check_kwargs(max_classifiers: int, omega_target: str) -> None:
    """``max_classifiers`` and ``omega_target`` as :class:`BoostingLearner` accepts them."""
    if max_classifiers < 1:
        raise ValueError(f"max_classifiers must be >= 1, got {max_classifiers}")
    if omega_target not in OMEGA_TARGETS:
        raise ValueError(f"omega_target must be one of {OMEGA_TARGETS}, got {omega_target!r}")


class BoostingLearner(Learner):
    """AUG. Unimodal logits = Σ_t ω-weighted classifier logits; inference = their late-fusion sum.

    ``residual_weight`` (λ, residual softening), ``check_every`` (ACA period T in epochs; ``"auto"`` =
    ``AUTO_ACA_FRACTION`` of the run, so ACA acts in short runs too; 20 until a trainer tells the
    run length), ``sigma``, ``tau``, ``max_classifiers`` (cap per modality), ``hidden`` (Layer1
    width), ``omega_target`` (``cover`` / ``onehot``, module docstring), ``omega_lr`` /
    ``omega_steps`` (ω's optimiser at each ACA call; the paper trains it "until convergence"
    with the backbone's optimiser type).
    """

    # old keyword -> new; applied where learners are checked and built (``mmrl_env.kwargs.apply_renames``)
    RENAMED_KWARGS: ClassVar[dict[str, str]] = {"lam": "residual_weight"}

    def __init__(self, dataset, optim: OptimConfig, device, generator, residual_weight: float = 0.2,
                 check_every: int | str = "auto", sigma: float = 1.0, tau: float = 0.01, max_classifiers: int = 10,
                 hidden: int = 256, omega_target: str = "cover", omega_lr: float = 1e-3,
                 omega_steps: int = 100) -> None:
        check_kwargs(max_classifiers, omega_target)
        self.check_every_arg = check_every
        self.check_every = auto_period(check_every, None, AUTO_ACA_FRACTION, PAPER_T, "check_every")
        self.residual_weight, self.sigma, self.tau, self.omega_target = residual_weight, sigma, tau, omega_target
        self.max_classifiers, self.hidden, self.omega_steps = max_classifiers, hidden, omega_steps
        super().__init__(dataset, optim, device, generator)
        m = dataset.num_modalities
        with seeded_init(generator):
            self.omega_net = OmegaNet(m).to(device)
        self.omega_optimizer = make_optimizer(self.omega_net.parameters(),
                                              OptimConfig(optim.name, omega_lr, optim.momentum, 0.0))
        self.omega = torch.ones(m, device=device)  # Algorithm 2: ω initialised to 1
        self.added: list[int] = []  # modality of every added classifier, in order (for state_dict)
        self._reset_scores()

    def build_model(self) -> nn.Module:
        return BoostingNet(self.dataset.modalities, self.num_classes, self.hidden)

    def set_run_length(self, epochs: int, iterations_per_epoch: int) -> None:
        super().set_run_length(epochs, iterations_per_epoch)
        self.check_every = auto_period(self.check_every_arg, epochs, AUTO_ACA_FRACTION, PAPER_T, "check_every")

    def _reset_scores(self) -> None:
        m = self.dataset.num_modalities
        self.score_sum = torch.zeros(m, device=self.device)
        self.score_count = [0] * m

    def _logits(self, r: int, u: Tensor) -> Tensor:
        """(t, N, K) classifier logits of modality r; the added ones (t ≥ 2) scaled by ω^r."""
        z = self.model.classifier_logits(r, u)
        if z.shape[0] == 1:
            return z
        return torch.cat([z[:1], z[1:] * self.omega[r].to(z.dtype)])

    def train_step(self, batch: Batch) -> StepOutput:
        self.set_training(True)
        loss = torch.zeros((), device=self.device)
        summed = []
        with self.autocast():
            for r, (x, y) in enumerate(zip(batch.inputs, batch.labels, strict=True)):
                z = self._logits(r, self.model.encoders[r](x))
                loss = loss + sum(boosting_losses(z, y, self.residual_weight, batch.batch_size))
                zsum = z.detach().float().sum(0)
                summed.append(zsum)
                if y.numel():
                    self.score_sum[r] += true_class_probability(zsum, y).sum()
                    self.score_count[r] += y.numel()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return StepOutput(loss.detach(), summed)

    @torch.no_grad()
    def predict(self, inputs: list[Tensor]) -> Prediction:
        self.set_training(False)
        with self.autocast():
            uni = [self._logits(r, self.model.encoders[r](x)).float().sum(0) for r, x in enumerate(inputs)]
        return Prediction(torch.stack(uni).sum(0), uni)

    # --- adaptive classifier assignment ---------------------------------------------
    def scores(self) -> Tensor:
        """OGM scores s^r of the current check window (mean true-class probability)."""
        count = torch.tensor(self.score_count, device=self.device, dtype=torch.float32).clamp(min=1)
        return self.score_sum / count

    def on_epoch_end(self, epoch: int) -> None:
        super().on_epoch_end(epoch)
        if (epoch + 1) % self.check_every == 0:
            self.assign(self.scores())
            self._reset_scores()

    def assign(self, scores: Tensor) -> list[int]:
        """One ACA call: add classifiers per :func:`aca_decision`, then refit ω. Returns the additions."""
        added = [r for r in aca_decision(scores, self.sigma, self.tau) if self._can_add(r)]
        for r in added:
            self.add_classifier(r)
        self.fit_omega(scores)
        return added

    def _can_add(self, r: int) -> bool:
        if self.model.counts[r] < self.max_classifiers:
            return True
        log.info("boosting: modality %s already has the maximum of %d classifiers; none added",
                 self.dataset.modality_names[r], self.max_classifiers)
        return False

    def add_classifier(self, r: int) -> nn.Module:
        """A new classifier for modality r, registered with the optimizer at the current lr."""
        with seeded_init(self.generator):
            layer = self.model.add_classifier(r)
        group = {k: v for k, v in self.optimizer.param_groups[0].items() if k != "params"}
        self.optimizer.add_param_group({**group, "params": list(layer.parameters())})
        self.lr_schedule.base_lrs.append(group.get("initial_lr", self.optim_cfg.lr))
        self.added.append(r)
        return layer

    def fit_omega(self, scores: Tensor) -> Tensor:
        """Train ω on ‖g − ω(s)‖², g from :func:`omega_target` (after this call's additions); store ω(s)."""
        s = scores.detach().float()
        g = omega_target(s, self.model.counts, self.omega_target, self.sigma, self.tau)
        s = s.to(self.omega_net.net[0].weight.dtype)  # float32 unless the model is built in another dtype
        self.omega_net.train()
        for _ in range(self.omega_steps):
            self.omega_optimizer.zero_grad(set_to_none=True)
            ((g - self.omega_net(s)) ** 2).sum().backward()
            self.omega_optimizer.step()
        with torch.no_grad():
            self.omega = self.omega_net(s).detach()
        return self.omega

    # --- reporting and checkpoints --------------------------------------------------
    def info(self) -> dict[str, Any]:
        names = self.dataset.modality_names
        return {"classifiers": dict(zip(names, self.model.counts, strict=True)),
                "omega": dict(zip(names, self.omega.tolist(), strict=True))}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "added": list(self.added), "omega": self.omega.clone(),
                "omega_net": self.omega_net.state_dict(), "omega_optimizer": self.omega_optimizer.state_dict(),
                "score_sum": self.score_sum.clone(), "score_count": list(self.score_count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the classifiers first (same order, so the optimizer's groups line up)."""
        added = list(state["added"])
        if added[: len(self.added)] != self.added:
            raise ValueError(f"checkpoint classifiers {added} do not extend this learner's {self.added}")
        for r in added[len(self.added):]:
            self.add_classifier(r)
        super().load_state_dict(state)
        self.omega = state["omega"].to(self.device)
        self.omega_net.load_state_dict(state["omega_net"])
        self.omega_optimizer.load_state_dict(state["omega_optimizer"])
        self.score_sum = state["score_sum"].to(self.device)
        self.score_count = list(state["score_count"])
