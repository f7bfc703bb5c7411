"""Explicit batched kernels for the K-run ``joint`` step of MLP models: forward and backward by hand.

Why: on a CPU the Synthetic model is tiny (a 2-layer MLP per modality, linear heads, a linear
fusion head), so ``vmap(grad_and_value(functional_call(...)))`` spends most of a step in
functorch dispatch, pytree traffic and autograd bookkeeping rather than arithmetic. This module
computes the same step for all K runs with a few dozen batched ops: ``baddbmm`` forwards, the
cross-entropy gradient (softmax − one-hot) scaled by the per-sample masks, and a hand-written
backward through Linear/ReLU layers whose weight gradients are written straight into the flat
(K, P) gradient tensor (``bmm(..., out=view)``). The backward is exact (the same formulas as
autograd's), so run k still reproduces the generic ``vmap``/per-run step of
``mmrl_env.learners.joint.JointLearner`` to float tolerance.

Per-modality row limits: modality j only processes the first N_j = max_k n_kj rows of the
window and the fusion head the first N_c = max_k min_j n_kj rows, so DUS-style spread sizes
pad much less than a single common N would.

Covered models (:meth:`MLPJointKernel.build` returns ``None`` otherwise and the learner uses
the generic ``vmap`` path): a ``MultimodalNet`` whose every encoder is an ``MLPEncoder`` (a
``Sequential`` of ``Linear`` layers, each optionally followed by ``ReLU``), ``Linear`` unimodal
heads, ``concat`` or ``sum`` fusion.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmrl_env.models.encoders import MLPEncoder
from mmrl_env.models.fusion import ConcatFusion, SumFusion
from mmrl_env.models.multimodal import MultimodalNet


@dataclass(frozen=True)
class _Layer:
    """A ``Linear`` layer in the flat parameter row: weight/bias names, shape, trailing ReLU."""

    weight: str
    bias: str
    relu: bool


@dataclass
class KernelStep:
    """What one batched joint step computes: per-run losses, the flat gradient and the unimodal logits."""

    loss: Tensor  # (K,) float
    grads: Tensor  # (K, P), the layout of ``RunStack.flat``
    logits: list[Tensor]  # per modality (K, N, C), rows past N_j are zero


def _linear_chain(prefix: str, seq: nn.Sequential) -> list[_Layer] | None:
    """``Linear`` (+ optional ``ReLU``) layers of ``seq``, or ``None`` for any other module."""
    layers: list[_Layer] = []
    for name, mod in seq.named_children():
        if isinstance(mod, nn.Linear) and type(mod) is nn.Linear and mod.bias is not None:
            layers.append(_Layer(f"{prefix}.{name}.weight", f"{prefix}.{name}.bias", False))
        elif type(mod) is nn.ReLU and layers and not layers[-1].relu:
            layers[-1] = _Layer(layers[-1].weight, layers[-1].bias, True)
        else:
            return None
    return layers or None


class MLPJointKernel:
    """The joint loss, its gradient and the forward of K stacked MLP models (see module doc)."""

    def __init__(self, encoders: list[list[_Layer]], fusion: str, fusion_dims: list[int],
                 params: dict[str, Tensor], columns: dict[str, tuple[int, int]]) -> None:
        self.encoders, self.fusion = encoders, fusion
        self.fusion_dims = fusion_dims
        self.params = params  # (K, ...) views into the flat parameters (updated in place by the optimizer)
        self.columns = columns  # name -> [start, end) in a flat row (``RunStack.columns``)
        self.shapes = {n: tuple(t.shape[1:]) for n, t in params.items()}

    @classmethod
    def build(cls, template: nn.Module, params: dict[str, Tensor],
              columns: dict[str, tuple[int, int]]) -> MLPJointKernel | None:
        """The kernel for ``template`` (a ``JointNet``), or ``None`` when it has other layers."""
        if not isinstance(template, MultimodalNet):
            return None
        encoders = []
        for j, enc in enumerate(template.encoders):
            chain = _linear_chain(f"encoders.{j}.net", enc.net) if type(enc) is MLPEncoder else None
            if chain is None:
                return None
            encoders.append(chain)
        if any(type(h) is not nn.Linear or h.bias is None for h in template.heads):
            return None
        dims = list(template.dims)
        fusion = template.fusion
        if type(fusion) is ConcatFusion and fusion.fc.bias is not None:
            kind = "concat"
        elif type(fusion) is SumFusion and all(fc.bias is not None for fc in fusion.fcs):
            kind = "sum"
        else:
            return None
        return cls(encoders, kind, dims, params, columns)

    # --- pieces --------------------------------------------------------------------------
    def _grad(self, grads: Tensor, name: str) -> Tensor:
        """(K, *shape) view of ``name``'s block in the flat gradient."""
        start, end = self.columns[name]
        return grads[:, start:end].view(grads.shape[0], *self.shapes[name])

    def _fusion_weights(self, j: int) -> tuple[Tensor, str, slice | None]:
        """Modality j's fusion weight (K, C, d_j), the gradient block's name and its column slice."""
        if self.fusion == "sum":
            name = f"fusion.fcs.{j}.weight"
            return self.params[name], name, None
        start = sum(self.fusion_dims[:j])
        cols = slice(start, start + self.fusion_dims[j])
        return self.params["fusion.fc.weight"][:, :, cols], "fusion.fc.weight", cols

    def _fusion_bias(self) -> Tensor:
        if self.fusion == "sum":
            return torch.stack([self.params[f"fusion.fcs.{j}.bias"] for j in range(len(self.encoders))]).sum(0)
        return self.params["fusion.fc.bias"]

    def encode(self, j: int, x: Tensor) -> list[Tensor]:
        """Modality j's activations for (K, n, d) inputs: [x, layer 1 output, ..., u_j]."""
        acts = [x]
        for layer in self.encoders[j]:
            h = torch.baddbmm(self.params[layer.bias].unsqueeze(1), acts[-1],
                              self.params[layer.weight].transpose(1, 2))
            acts.append(h.relu_() if layer.relu else h)
        return acts

    def head(self, j: int, u: Tensor) -> Tensor:
        return torch.baddbmm(self.params[f"heads.{j}.bias"].unsqueeze(1), u,
                             self.params[f"heads.{j}.weight"].transpose(1, 2))

    def fuse(self, feats: list[Tensor]) -> Tensor:
        """z_multi from the (K, n, d_j) features (equal n)."""
        z = self._fusion_bias().unsqueeze(1)
        for j, u in enumerate(feats):
            z = torch.baddbmm(z, u, self._fusion_weights(j)[0].transpose(1, 2))
        return z

    # --- the step ------------------------------------------------------------------------
    def forward(self, inputs: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        """Unimodal logits per modality and z_multi for (K, n, d_j) inputs (predictions)."""
        feats = [self.encode(j, x)[-1] for j, x in enumerate(inputs)]
        return [self.head(j, u) for j, u in enumerate(feats)], self.fuse(feats)

    def loss_and_grads(self, inputs: list[Tensor], labels: Tensor, masks: Tensor, rows: list[int],
                       common: int, batch_size: int, alpha: float, exact_out: bool = True) -> KernelStep:
        """The joint objective α·Σ_j batch-normalised-CE_j + (1−α)·mean-CE_multi of every run and its
        gradient w.r.t. the flat parameters. ``rows[j]`` = N_j, ``common`` = N_c (host ints);
        ``exact_out`` writes matmul results straight into the gradient (off under autocast,
        where they come back in bf16)."""
        k, n = labels.shape
        flat_grads = self.params[next(iter(self.params))].new_empty(k, max(end for _, end in self.columns.values()))

        def put(value: Tensor, name: str, cols: slice | None = None) -> None:
            dst = self._grad(flat_grads, name)
            (dst if cols is None else dst[:, :, cols]).copy_(value)

        def bmm_into(a: Tensor, b: Tensor, name: str, cols: slice | None = None) -> None:
            if exact_out and cols is None:
                torch.bmm(a, b, out=self._grad(flat_grads, name))
            else:
                put(torch.bmm(a, b), name, cols)

        def sum_into(a: Tensor, name: str) -> None:
            if exact_out:
                torch.sum(a, 1, out=self._grad(flat_grads, name))
            else:
                put(a.sum(1), name)

        acts = [self.encode(j, x[:, :rows[j]]) for j, x in enumerate(inputs)]
        feats = [a[-1] for a in acts]
        z_uni = [self.head(j, u) for j, u in enumerate(feats)]
        z_multi = self.fuse([u[:, :common] for u in feats])

        def ce_grad(z: Tensor, y: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
            """(Σ_i w_i CE_i per run, dz_i = w_i·(softmax(z_i) − onehot(y_i))), by autograd's own
            log-softmax backward kernel, so the gradient rounds as the autograd path's does."""
            logp = z.float().log_softmax(-1)
            y = y.unsqueeze(-1)
            nll = logp.gather(-1, y).squeeze(-1).neg_()
            dlogp = torch.zeros_like(logp).scatter_(-1, y, weight.neg().unsqueeze(-1))
            dz = torch.ops.aten._log_softmax_backward_data(dlogp, logp, -1, logp.dtype)
            # autograd's backward of ``z.float()`` casts the gradient back to z's dtype
            return (nll * weight).sum(1), dz.to(z.dtype)

        terms, dz_uni = [], []
        for j, z in enumerate(z_uni):
            m = masks[:, j, :rows[j]]
            term, dz = ce_grad(z, labels[:, :rows[j]], m * alpha / batch_size)  # f32(α)/B, as autograd
            terms.append(term)
            dz_uni.append(dz)
        c = masks[:, :, :common].amin(1)
        count = c.sum(1).clamp(min=1)
        fused, dz_multi = ce_grad(z_multi, labels[:, :common], (1 - alpha) * c / count.unsqueeze(1))
        loss = functools.reduce(operator.add, terms) + fused  # Σ_j term_j left to right, then the fused term

        # heads and fusion
        dz_multi_t = dz_multi.transpose(1, 2)
        for j, (dz, u) in enumerate(zip(dz_uni, feats, strict=True)):
            bmm_into(dz.transpose(1, 2), u, f"heads.{j}.weight")
            sum_into(dz, f"heads.{j}.bias")
            weight, name, cols = self._fusion_weights(j)
            bmm_into(dz_multi_t, u[:, :common], name, cols)
        if self.fusion == "sum":
            for j in range(len(self.encoders)):
                sum_into(dz_multi, f"fusion.fcs.{j}.bias")
        else:
            sum_into(dz_multi, "fusion.fc.bias")

        # encoders, from the top
        for j, (layers, act, dz) in enumerate(zip(self.encoders, acts, dz_uni, strict=True)):
            du = torch.bmm(dz, self.params[f"heads.{j}.weight"])
            if exact_out:
                du[:, :common].baddbmm_(dz_multi, self._fusion_weights(j)[0])
            else:  # autocast has no in-place baddbmm_
                du[:, :common] += torch.bmm(dz_multi, self._fusion_weights(j)[0])
            for i in range(len(layers) - 1, -1, -1):
                layer = layers[i]
                if layer.relu:
                    du = torch.ops.aten.threshold_backward(du, act[i + 1], 0)
                bmm_into(du.transpose(1, 2), act[i], layer.weight)
                sum_into(du, layer.bias)
                if i > 0:
                    du = torch.bmm(du, self.params[layer.weight])

        logits = []
        for z, r in zip(z_uni, rows, strict=True):
            if r == n:
                logits.append(z.detach().float())
            else:
                padded = z.new_zeros(k, n, z.shape[-1], dtype=torch.float32)
                padded[:, :r] = z
                logits.append(padded)
        return KernelStep(loss, flat_grads, logits)
