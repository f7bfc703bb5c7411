"""K models as stacked tensors: one leading run axis over every parameter and buffer.

Run k's model is built from run k's private generator alone (:func:`seeded_init`, then
``to(device)``), so its initial weights depend on its seed only — not on K or on the other
runs; the K models are then stacked with ``torch.func.stack_module_state``. The forward pass
uses one storage-free template (meta device, BatchNorm swapped for the engine's masked layer)
through ``torch.func.functional_call``.

Memory format: the stacked tensors stay contiguous. ``channels_last`` breaks ``vmap``
(``Tensor.clone`` with a ``memory_format`` has no batching rule), and under ``vmap`` the
convolution of K runs becomes one grouped convolution over a (N, K·C, H, W) tensor, for which
the contiguous layout is what the batching rule produces anyway. The per-run loop (the big
encoders) is outside ``vmap``: with ``channels_last`` set (the engine sets it there on CUDA, as
the cuDNN/Tensor-Core convolutions of ResNets and video networks prefer it under bf16),
:meth:`RunStack.unflatten` hands each run's convolution weights over as ``channels_last``
(``channels_last_3d`` for 3-D) copies, so the convolutions run in that layout; the copies are
differentiable, the gradient lands in the flat row. Not measured on a GPU yet (none was lent).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.func import stack_module_state

from mmrl_env.engine.batchnorm import batchnorm_momenta, masked_template


@contextlib.contextmanager
def seeded_init(generator: torch.Generator) -> Iterator[None]:
    """Module init draws from the global RNG: fork it, seeded from our private generator,
    so that construction is reproducible without touching the caller's RNG state."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def prefixed(*prefixes: str) -> Callable[[str], bool]:
    """A filter on the stack's parameter names: those that start with any of ``prefixes``
    (e.g. ``prefixed("encoders.0.")``, for an optimizer group)."""
    return lambda name: name.startswith(prefixes)


class RunStack:
    """Stacked parameters and buffers of K models built by ``build`` (an ``nn.Module`` factory).

    All parameters of a run live in one row of a flat (K, P) tensor (``flat``); ``params`` holds
    (K, ...) views into it under the model's names. The gradient and the optimizer then work on
    one tensor instead of one per parameter: at small K the step is overhead-bound, and this
    removes most of the per-parameter ops and pytree traffic.
    """

    def __init__(self, build: Callable[[], nn.Module], generators: Sequence[torch.Generator],
                 device: torch.device) -> None:
        self.build, self.device = build, device
        models = [self._build(g) for g in generators]
        params, buffers = stack_module_state(models)
        self.names = list(params)
        self.shapes = [tuple(params[n].shape[1:]) for n in self.names]
        self.numels = [math.prod(s) for s in self.shapes]
        ends = itertools.accumulate(self.numels)  # each parameter's column range [start, end) in a row of ``flat``
        self.columns = {n: (end - numel, end) for n, numel, end in zip(self.names, self.numels, ends, strict=True)}
        self.flat = torch.cat([params[n].detach().flatten(1) for n in self.names], dim=1)
        self.params: dict[str, Tensor] = {n: t.view(-1, *shape) for n, t, shape in
                                          zip(self.names, self.flat.split(self.numels, dim=1), self.shapes,
                                              strict=True)}
        self.buffers: dict[str, Tensor] = buffers
        self.template = masked_template(models[0])
        self.bn_momenta = batchnorm_momenta(self.template)
        self.channels_last = False
        self.conv_weights = {f"{prefix}.weight" if prefix else "weight":
                             torch.channels_last if isinstance(m, nn.Conv2d) else torch.channels_last_3d
                             for prefix, m in models[0].named_modules() if isinstance(m, nn.Conv2d | nn.Conv3d)}

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """One run's (P,) parameter row as the model's named tensors (views; usable under vmap);
        with ``channels_last``, the convolution weights as channels-last copies (module doc)."""
        params = {n: t.view(shape) for n, t, shape in zip(self.names, flat.split(self.numels), self.shapes,
                                                           strict=True)}
        if self.channels_last:
            for name, fmt in self.conv_weights.items():
                params[name] = params[name].contiguous(memory_format=fmt)
        return params

    @property
    def num_runs(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def _build(self, generator: torch.Generator) -> nn.Module:
        with seeded_init(generator):
            return self.build().to(self.device)

    @torch.no_grad()
    def rebuild(self, run: int, generator: torch.Generator) -> None:
        """A fresh model in slot ``run``, built from ``generator`` (as at construction)."""
        model = self._build(generator)
        for name, p in model.named_parameters():
            self.params[name][run].copy_(p)
        for name, b in model.named_buffers():
            self.buffers[name][run].copy_(b)

    def run_state_dict(self, run: int) -> dict[str, Tensor]:
        """Run ``run``'s weights as its model's ``state_dict`` (e.g. to compare or export)."""
        return {name: t[run].clone() for name, t in {**self.params, **self.buffers}.items()}
