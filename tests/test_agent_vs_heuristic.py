"""bench/agent_vs_heuristic.py: paired intervals over seeds, and --env-kwargs reaching every policy."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from agent_vs_heuristic import compare, main  # noqa: E402


def test_paired_interval_removes_the_shared_seed_spread():
    rng = np.random.default_rng(0)
    base = rng.normal(85, 5, 20)  # seeds differ by far more than the effect
    better = base + 1.0 + rng.normal(0, 0.2, 20)
    row = compare({"base": base, "better": better, "same": base.copy()}, "base")
    by = {r["policy"]: r for r in row}
    assert by["better"]["ci_low"] > 0.5 and by["better"]["ci_high"] < 1.5
    assert by["better"]["wins"] == 1.0 and by["better"]["delta"] == pytest.approx(np.mean(better - base))
    # unpaired, the two means' spreads overlap: the interval must come from the differences
    assert abs(better.mean() - base.mean()) < base.std()
    assert (by["same"]["delta"], by["same"]["ci_low"], by["same"]["ci_high"], by["same"]["ties"]) == (0, 0, 0, 1)


def test_env_kwargs_change_the_data_of_every_policy(tmp_path, small_kwargs):
    kw = [f"dataset_kwargs.{k}={v}" for k, v in small_kwargs.pop("dataset_kwargs").items()]
    kw += [f"{k}={v}" for k, v in small_kwargs.items()]
    out = []
    for seed in (0, 1):
        f = tmp_path / f"{seed}.json"
        main(["--policies", "uniform", "--baseline", "dus-h", "--seeds", "2",
              "--env-kwargs", *kw, f"dataset_kwargs.seed={seed}", "--json", str(f)])
        out.append(json.loads(f.read_text())["per_seed"])
    assert set(out[0]) == {"uniform", "dus-h"} and all(len(v) == 2 for v in out[0].values())
    assert out[0]["uniform"] != out[1]["uniform"] and out[0]["dus-h"] != out[1]["dus-h"]
