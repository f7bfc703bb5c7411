"""Pretrained sampling policies (``dus-pretrained``, ``bss-pretrained``): trained once on the
``SyntheticMix`` task family (``training/pretrain.py``), shipped as tensors + JSON, and acting
wherever a heuristic acts, on any dataset with any number of modalities.

Two architectures (the JSON's ``arch``):

* ``gated-boost`` (``dus-pretrained``): a five-parameter rule chosen by search on the family
  (``training/pretrain.py``, config ``policy: gated-boost``). It gives the modalities behind
  the strongest more samples, n_j ∝ exp(−κ·d_j) on the chance-normalised discrepancy d (DUS-H's
  form) with no modality below share·B samples (share 0: the map's n_min, as DUS-H; a higher
  share is a milder boost that keeps the strong modality, and the fusion loss, which trains on
  the samples all modalities share, fed), but only while (1) the largest gap max_j |d_j| is at
  least τ, (2) training progress is below p_end (boost early, then leave sampling alone: late
  boosting starves the strong modality when the weak one has little left to learn), and (3) the
  strongest modality's chance-normalised score reaches the gate g (a confident strong modality is
  what suppresses the others; before that, boosting takes samples from a modality still learning).
  Parameters: ``RULE_PARAMS`` = (κ, τ, p_end, g, share). κ = 0 is "leave sampling alone";
  (20, 0.02, 1, −1, 0) is DUS-H. The shipped values and how they were chosen: the weights' JSON
  and BENCHMARKS.md, "Transfer". Files written before ``share`` existed (four parameters) load
  with share 0.
* ``set-mlp`` (``bss-pretrained``, and earlier ``dus-pretrained`` files): a *set* policy: one
  small MLP reads each modality's own features — its chance-normalised score ŝ_j, its gap d_j
  to the strongest, ŝ_j minus the mean of the others, training progress and its previous
  action — so the same weights act for M = 2, 3, ... and the modalities' order does not matter.
  DUS: the MLP's output per modality, centred over the modalities, is that modality's action
  (all equal = every modality gets B samples: plain joint training). BSS: the modalities'
  hidden units are averaged and one output sets the action a = 1 − 2·tanh(relu(z)) (z ≤ 0:
  λ = 1, no curriculum).

The observation must be chance-normalised (``obs_norm="chance"``, which the policies declare
in ``env_kwargs``), so that the scores mean the same on every dataset. Weights load with
``torch.load(weights_only=True)``; the JSON holds the architecture and how it was trained.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from mmrl_agents.heuristics.base import HeuristicPolicy
from mmrl_env.bounded_input import check_zip, read_json_file
from mmrl_env.envs.control import ControlSpec
from mmrl_env.samplers.unimodal import dus_heuristic_quantities

FEATURES = ("s_hat", "d", "s_hat_vs_rest", "progress", "prev_action")
PARAMS = ("w1", "b1", "w2", "b2")
RULE_PARAMS = ("kappa", "tau", "p_end", "gate", "share")
ARCHS = ("set-mlp", "gated-boost")


def param_shapes(num_features: int, hidden: int) -> dict[str, tuple[int, ...]]:
    return {"w1": (num_features, hidden), "b1": (hidden,), "w2": (hidden,), "b2": ()}


def num_params(num_features: int, hidden: int) -> int:
    return sum(int(np.prod(s)) for s in param_shapes(num_features, hidden).values())


def unflatten(theta: np.ndarray, num_features: int, hidden: int) -> dict[str, np.ndarray]:
    """(K, P) flat parameter rows -> per-name (K, ...) arrays (one policy per row)."""
    out, start = {}, 0
    for name, shape in param_shapes(num_features, hidden).items():
        size = int(np.prod(shape))
        out[name] = theta[:, start:start + size].reshape(theta.shape[0], *shape)
        start += size
    return out


def features(obs: np.ndarray, control: ControlSpec) -> np.ndarray:
    """(K, obs) observations -> (K, M, F) per-modality features (``FEATURES``)."""
    layout = control.layout
    s, d = obs[:, layout.s_hat], obs[:, layout.d]
    m = s.shape[1]
    rest = (s.sum(1, keepdims=True) - s) / max(m - 1, 1)
    progress = np.repeat(obs[:, [layout.progress]], m, axis=1)
    prev = obs[:, layout.prev_action]
    prev = prev - prev.mean(1, keepdims=True) if prev.shape[1] == m else np.repeat(prev[:, :1], m, axis=1)
    return np.stack([s, d, s - rest, progress, prev], axis=-1).astype(np.float32)


def act(method: str, theta: dict[str, np.ndarray], feats: np.ndarray) -> np.ndarray:
    """Actions (K, A) of K policies (parameter rows of ``theta``) on their (K, M, F) features."""
    h = np.maximum(np.einsum("kmf,kfh->kmh", feats, theta["w1"]) + theta["b1"][:, None, :], 0.0)
    if method == "DUS":
        out = np.einsum("kmh,kh->km", h, theta["w2"])
        return np.clip(out - out.mean(1, keepdims=True), -1.0, 1.0)
    z = np.einsum("kh,kh->k", h.mean(1), theta["w2"]) + theta["b2"]
    return (1.0 - 2.0 * np.tanh(np.maximum(z, 0.0)))[:, None]


def rule_act(params: np.ndarray, obs: np.ndarray, control: ControlSpec) -> np.ndarray:
    """DUS actions (K, M) of K ``gated-boost`` rules (rows of ``params``, columns ``RULE_PARAMS``)
    on their (K, obs) chance-normalised observations (module docstring).

    Inside its gates a rule plays DUS-H's quantities with its own κ, τ and floor share·B
    (``dus_heuristic_quantities``, turned into the env's action as the ``dus-h`` policy does), so
    (20, 0.02, 1, −1, 0) *is* DUS-H."""
    layout, qmap = control.layout, control.action_map
    s, d, progress = obs[:, layout.s_hat], obs[:, layout.d], obs[:, layout.progress]
    kappa, tau, p_end, gate, share = (params[:, i] for i in range(len(RULE_PARAMS)))
    on = (progress < p_end) & (s.max(1) >= gate) & (kappa > 0)
    out = np.tile(qmap.neutral, (obs.shape[0], 1))  # outside its gates: the map's own "leave sampling alone"
    for k in np.flatnonzero(on):
        n = dus_heuristic_quantities(d[k], qmap, float(kappa[k]), float(tau[k]),
                                     n_min=int(round(float(share[k]) * qmap.batch_size)))
        out[k] = qmap.action(np.asarray(n))
    return out


def weights_dir() -> Path:
    return Path(str(resources.files("mmrl_agents") / "weights"))


def load_weights(stem: str, folder: str | Path | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """The JSON spec and the flat parameter vector of ``<folder>/<stem>.{json,pt}`` (tensors only)."""
    folder = Path(folder) if folder is not None else weights_dir()
    spec_path, pt_path = folder / f"{stem}.json", folder / f"{stem}.pt"
    for path in (spec_path, pt_path):
        if not path.is_file():
            raise FileNotFoundError(f"no pretrained policy file {path}; retrain it with "
                                    f"python training/pretrain.py -c configs/pretrain_{stem.split('_')[0]}.yaml")
    spec = read_json_file(spec_path, "pretrained policy spec")
    try:
        check_zip(pt_path, "the pretrained policy weights")
        state = torch.load(pt_path, weights_only=True, map_location="cpu")
    except (zipfile.BadZipFile, RuntimeError, pickle.UnpicklingError) as err:
        raise ValueError(f"{pt_path} is damaged or not a tensors-only file ({type(err).__name__}); retrain it with "
                         f"python training/pretrain.py -c configs/pretrain_{stem.split('_')[0]}.yaml") from err
    arch = spec.get("arch", "set-mlp")
    if arch not in ARCHS:
        raise ValueError(f"{spec_path}: unknown arch {arch!r} (this version knows {', '.join(ARCHS)}); retrain it")
    names = PARAMS if arch == "set-mlp" else ("rule",)
    if not isinstance(state, dict) or sorted(state) != sorted(names):
        raise ValueError(f"{pt_path}: expected the tensors {list(names)}, found "
                         f"{sorted(state) if isinstance(state, dict) else type(state).__name__}; retrain it")
    theta = np.concatenate([state[n].numpy().reshape(-1) for n in names]).astype(np.float32)
    if arch == "gated-boost":
        if tuple(spec.get("params", ())) == RULE_PARAMS[:4] and theta.size == 4:  # written before ``share``
            theta = np.append(theta, np.float32(0.0))
            spec = {**spec, "params": list(RULE_PARAMS)}
        if theta.size != len(RULE_PARAMS) or tuple(spec.get("params", ())) != RULE_PARAMS:
            raise ValueError(f"{pt_path}: {theta.size} rule parameters {spec.get('params')} do not match this "
                             f"version's rule {list(RULE_PARAMS)}; retrain it")
        return spec, theta
    expected = num_params(len(spec["features"]), spec["hidden"])
    if theta.size != expected or tuple(spec["features"]) != FEATURES:
        raise ValueError(f"{pt_path}: {theta.size} parameters / features {spec['features']} do not match this "
                         f"version's network ({expected} parameters, features {list(FEATURES)}); retrain it")
    return spec, theta


def save_weights(stem: str, folder: str | Path, theta: np.ndarray, spec: dict[str, Any]) -> None:
    """Write ``<stem>.pt`` (a state dict of tensors) and ``<stem>.json`` (architecture and provenance)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if spec.get("arch") == "gated-boost":
        torch.save({"rule": torch.from_numpy(np.asarray(theta, np.float32).reshape(len(RULE_PARAMS)).copy())},
                   folder / f"{stem}.pt")
        (folder / f"{stem}.json").write_text(json.dumps({**spec, "params": list(RULE_PARAMS)}, indent=2) + "\n")
        return
    parts = unflatten(theta[None].astype(np.float32), len(FEATURES), spec["hidden"])
    torch.save({n: torch.from_numpy(np.ascontiguousarray(parts[n][0])) for n in PARAMS}, folder / f"{stem}.pt")
    (folder / f"{stem}.json").write_text(json.dumps({**spec, "features": list(FEATURES)}, indent=2) + "\n")


class PretrainedPolicy(HeuristicPolicy):
    """Base of the shipped policies: load the weights, check the env, act on batches."""

    stem: ClassVar[str] = ""
    env_kwargs: ClassVar[dict[str, Any]] = {"obs_norm": "chance"}

    def __init__(self, env: gym.Env, seed: int | None = None, weights: str | None = None) -> None:
        super().__init__(env, seed, weights=weights)
        if self.control.method not in self.methods:
            raise ValueError(f"{self.name} acts on {self.methods[0]} envs, this one is {self.control.method}")
        if self.control.settings.get("obs_norm") != "chance":
            raise ValueError(f"{self.name} reads chance-normalised observations: make the env with "
                             "obs_norm='chance' (train_agent.py and evaluate.py do this for you)")
        self.spec, theta = load_weights(self.stem, weights)
        self.arch = self.spec.get("arch", "set-mlp")
        if self.arch == "gated-boost" and self.control.method != "DUS":
            raise ValueError(f"{self.name}: a gated-boost rule sets DUS quantities, this env is {self.control.method}")
        self.rule = theta[None]
        self.theta = unflatten(theta[None], len(FEATURES), self.spec["hidden"]) if self.arch == "set-mlp" else {}

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        obs = np.asarray(observation, dtype=np.float32)
        batch = obs.reshape(-1, obs.shape[-1])
        if self.arch == "gated-boost":
            actions = rule_act(np.repeat(self.rule, batch.shape[0], axis=0), batch, self.control)
        else:
            theta = {k: np.repeat(v, batch.shape[0], axis=0) for k, v in self.theta.items()}
            actions = act(self.control.method, theta, features(batch, self.control)).astype(np.float32)
        return (actions[0] if obs.ndim == 1 else actions), None

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.predict(obs)[0]


class DUSPretrainedPolicy(PretrainedPolicy):
    """DUS sample quantities from the policy pretrained on SyntheticMix (module docstring)."""

    name = "dus-pretrained"
    methods = ("DUS",)
    stem = "dus_pretrained"


class BSSPretrainedPolicy(PretrainedPolicy):
    """BSS curriculum proportion from the policy pretrained on SyntheticMix (module docstring)."""

    name = "bss-pretrained"
    methods = ("BSS",)
    stem = "bss_pretrained"
    env_kwargs: ClassVar[dict[str, Any]] = {"obs_norm": "chance", "curriculum": "rank"}
