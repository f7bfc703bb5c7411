"""Zero-shot transfer of the pretrained policies (issue 26): ``dus-pretrained`` / ``bss-pretrained``,
trained on the SyntheticMix family only, against no rebalancing and the papers' heuristics on
data they never saw. Results: BENCHMARKS.md, "Transfer".

    python bench/transfer.py                                   # every case, DUS and BSS, 20 seeds
    python bench/transfer.py --methods DUS --cases synthetic,mfeat --seeds 20
    python bench/transfer.py --mfeat-agent runs/ppo/DUS-MFeat_1  # + an agent trained on DUS-MFeat itself

Every case runs the one evaluation (``mmrl_training.evaluation.evaluate``, what ``evaluate.py`` runs: each
policy's seeds as one batched K-run env, common random numbers per seed) on the seeds evaluate.py uses by default
(10000, 10001, ...; fixed, never used to choose anything), then ``mmrl_training.stats.compare`` gives
the paired difference of test fused accuracy with its 95 % bootstrap interval against the
no-rebalancing baseline (``uniform`` / ``full``) and against each paper heuristic. The
``Custom`` case writes MFeat views in the user-data format (``.npz`` per split) with a test
split from held-out style clusters (``write_mfeat_custom(shift="clusters")``), and loads it
as ``DUS-Custom`` / ``BSS-Custom`` as a user would.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrl_agents.heuristics.pretrained import weights_dir  # noqa: E402
from mmrl_training import report, stats  # noqa: E402
from mmrl_training.config import deep_merge, parse_kv, set_threads  # noqa: E402
from mmrl_training.evaluation import Policy, display_name, evaluate, load_run  # noqa: E402

FIRST_SEED = 10_000  # evaluate.py's default --first-seed

POLICIES = {"DUS": (["dus-pretrained", "dus-h"], "uniform"), "BSS": (["bss-pretrained", "bss-h", "bss-l"], "full")}
# name -> (dataset, env kwargs as evaluate.py's --env-kwargs tokens, what it is)
CASES: dict[str, tuple[str, list[str], str]] = {
    "synthetic": ("Synthetic", [], "Synthetic, default features (MLP)"),
    "raw": ("Synthetic", ["dataset_kwargs.form=raw"], "Synthetic form=raw (small CNNs)"),
    "mfeat": ("MFeat", [], "MFeat, default pair"),
    "mfeat-weak": ("MFeat", ["dataset_kwargs.views=[fou, zer]"], "MFeat fou+zer (weak+weak)"),
    "mfeat-triple": ("MFeat", ["dataset_kwargs.views=[pix, fou, mor]"], "MFeat pix+fou+mor (triple)"),
    "custom": ("Custom", [], "Custom .npz from MFeat views, test from other sources"),
}


def custom_root(folder: Path) -> Path:
    """The Custom case's data: MFeat views written in the user format with a shifted test split."""
    from mmrl_env.data.mfeat_custom import write_mfeat_custom

    root = folder / "mfeat_custom"
    if not (root / "train.npz").is_file():
        write_mfeat_custom(root, shift="clusters")  # test from held-out style clusters (unseen "writers")
    return root


def fingerprint(spec: str) -> str:
    """What a policy's cached results depend on besides the case: a pretrained policy's weights."""
    if spec.endswith("-pretrained"):
        path = weights_dir() / f"{spec.replace('-', '_')}.pt"
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else "no weights"
    return ""


def run_case(name: str, method: str, seeds: int, extra: list[str], workdir: Path, extra_policies: list[str],
             cache: dict[str, Any], only: set[str] | None = None) -> dict[str, Any] | None:
    """Every policy of the case on the same seeds (each policy's seeds as one batched env; a
    policy already in ``cache`` with the same settings is not run again), then the paired table.
    ``only``: run just these policies (fill the cache; no table)."""
    dataset, tokens, what = CASES[name]
    tokens = [*tokens, *extra]
    if name == "custom":
        tokens.append(f"dataset_kwargs.root={custom_root(workdir)}")
    names, baseline = POLICIES[method]
    specs = [*names, *extra_policies, baseline]
    env_id, overrides = f"{method}-{dataset}", parse_kv(tokens)
    seed_list = [FIRST_SEED + i for i in range(seeds)]
    runs = {s: load_run(Path(s.partition(":")[2]), env_id, s.partition(":")[0]) for s in specs if ":" in s}
    base = deep_merge(next(iter(runs.values()))[1] if runs else {}, overrides)  # as evaluate.py: the first run's
    records: dict[str, list[report.Record]] = {}
    for spec in specs:
        key = "|".join([name, method, spec, fingerprint(spec), str(seeds), *extra])
        if key not in cache and (only is None or spec in only):
            start = time.perf_counter()
            if spec in runs:
                agent, kwargs = runs[spec]
                row = Policy(display_name(spec), deep_merge(kwargs, overrides), agent=agent)
            else:
                row = Policy.of_heuristic(spec, base, seed_list[0])
            got = evaluate(env_id, [row], seed_list)
            cache[key] = {"metrics": [r.metrics for r in got.records[row.name]],
                          "modalities": list(got.modalities), "seconds": time.perf_counter() - start}
        if key in cache:
            records[display_name(spec)] = [report.Record(m) for m in cache[key]["metrics"]]
            modalities = tuple(cache[key]["modalities"])
    if only is not None or len(records) < len(specs):
        return None
    per_seed = report.per_seed(records)
    rows = {}
    for against in [baseline, *names[1:]]:
        for policy, comparison in stats.compare(per_seed, display_name(against)).items():
            iv = comparison.delta["fused_acc"]
            rows.setdefault(policy, {})[against] = [100 * iv.estimate, 100 * iv.low, 100 * iv.high]
    summary = report.summarize(records, modalities)
    means = {p: 100 * s["fused_acc"][0] for p, s in summary.items()}
    return {"case": name, "what": what, "method": method, "env": f"{method}-{dataset}", "env_kwargs": tokens,
            "seeds": seed_list, "test_fused_acc": means, "paired": rows,
            "per_seed_fused_acc": {p: v["fused_acc"].tolist() for p, v in per_seed.items()}}


def _cell(v: list[float]) -> str:
    return f"{v[0]:+.2f} [{v[1]:+.2f}, {v[2]:+.2f}]"


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| case | policy | test fused acc (%) | Δ vs no rebalancing [95 % CI] "
             "| Δ vs paper heuristic(s) [95 % CI] |", "|---|---|---|---|---|"]
    for r in results:
        baseline = POLICIES[r["method"]][1]
        for policy, acc in r["test_fused_acc"].items():
            if policy == baseline:
                continue
            d = r["paired"].get(policy, {})
            vs_base = _cell(d[baseline]) if baseline in d else ""
            vs_h = "; ".join(f"{h}: {_cell(v)}" for h, v in d.items() if h not in (baseline, policy))
            lines.append(f"| {r['what']} ({r['env']}) | {policy} | {acc:.2f} | {vs_base} | {vs_h} |")
        lines.append(f"| {r['what']} ({r['env']}) | {baseline} | {r['test_fused_acc'][baseline]:.2f} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    p.add_argument("--methods", default="DUS,BSS")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--only", help="run just these policies (comma-separated) and keep their results for a later "
                   "full run: e.g. the baselines while the pretrained policy still trains")
    p.add_argument("--raw-env-kwargs", nargs="*", default=[],
                   help="extra --env-kwargs for the raw (CNN) case only, e.g. epochs=2 to fit a CPU budget")
    p.add_argument("--mfeat-agent", help="a train_agent.py run dir of an agent trained on DUS-MFeat: added to "
                   "the DUS mfeat case as ppo:<dir>")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/bench/transfer.json", help="JSON: the per-policy results (a cache: "
                   "policies already run with the same settings are not run again) and the tables")
    args = p.parse_args(argv)
    set_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    store = json.loads(out.read_text()) if out.is_file() else {"cache": {}, "results": []}
    only = set(args.only.split(",")) if args.only else None
    workdir = out.parent / "data"
    for method in args.methods.split(","):
        for name in args.cases.split(","):
            extra = args.raw_env_kwargs if name == "raw" else []
            direct = args.mfeat_agent and name == "mfeat" and method == "DUS"
            agents = [f"ppo:{args.mfeat_agent}"] if direct else []
            result = run_case(name, method, args.seeds, extra, workdir, agents, store["cache"], only)
            if result is not None:
                store["results"] = [r for r in store["results"] if (r["case"], r["method"]) != (name, method)]
                store["results"].append(result)
                print(markdown([result]), flush=True)
            out.write_text(json.dumps(store, indent=1))
    print(markdown(store["results"]))


if __name__ == "__main__":
    main()
