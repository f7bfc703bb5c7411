"""Train an agent (or run a heuristic) on an mmrl environment; compare with baselines.

    python training/train_agent.py --env DUS-Synthetic                 # PPO, defaults
    python training/train_agent.py --env DUS-Synthetic --algo dus-h    # a heuristic policy
    python training/train_agent.py --env DUS-Synthetic --algo sac -c configs/sac.yaml \
        --env-kwargs epochs=4 dataset_kwargs.n_train=1000

The run directory (``--log-folder``/<algo>/<env>_<n>) keeps the saved agent, the resolved
config, the command line, the TensorBoard events (``env/``: the policy's per-step
quantities; ``sb3_1/``: SB3's training curves) and ``results.json`` (the final table).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml
from rich.console import Console
from rich.table import Table
from stable_baselines3.common.monitor import Monitor
from tqdm import tqdm

import mmrl_env
from agents.factory import LEARNED, algo_names, make_agent, method_of
from agents.heuristics import HEURISTICS
from mmrl_env.envs.tensorboard import TensorBoardInfo
from training.config import check_algo_kwargs, deep_merge, load_hyperparams, parse_kv
from training.rollout import run_episode, summarize

DEFAULT_TIMESTEPS = 4096


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="DUS-Synthetic", help=f"env id, one of: {', '.join(mmrl_env.env_ids())}")
    p.add_argument("--algo", default="ppo", help=f"one of: {', '.join(algo_names())}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-n", "--total-timesteps", type=int, default=None,
                   help=f"env steps to train for (default: config n_timesteps, else {DEFAULT_TIMESTEPS})")
    p.add_argument("-c", "--config", default=None, help="YAML hyperparameters, sections per env id "
                   "(default: configs/<algo>.yaml)")
    p.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                   help="env keyword arguments; dotted keys nest (dataset_kwargs.n_train=500)")
    p.add_argument("--device", default="auto", help="device of the inner training and the agent: auto, cpu, cuda")
    p.add_argument("-f", "--log-folder", default="runs", help="root of the run directories")
    p.add_argument("--tensorboard-log", default=None, help="TensorBoard root (default: the run directory)")
    p.add_argument("--eval-episodes", type=int, default=None, help="episodes (seeds) of the final comparison")
    p.add_argument("--baselines", default=None,
                   help="comma-separated heuristics to compare against (default: the method's heuristics)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("-v", "--verbose", type=int, default=0)
    return p.parse_args(argv)


def next_run_dir(root: Path, algo: str, env_id: str) -> Path:
    base = root / algo
    n = 1
    while (base / f"{env_id}_{n}").exists():
        n += 1
    path = base / f"{env_id}_{n}"
    path.mkdir(parents=True)
    return path


def default_baselines(method: str, algo: str) -> list[str]:
    """The method's own heuristics, then random actions."""
    names = [n for n, c in HEURISTICS.items() if method in c.methods] + ["random"]
    return [n for n in names if n != algo]


def agent_device(algo: str, device: str) -> str:
    """SB3 recommends the CPU for on-policy MLP agents; the inner trainer takes the GPU."""
    return "cpu" if device == "auto" and algo in ("ppo", "a2c", "reinforce") else device


def evaluate(policy: Any, env: gym.Env, seeds: list[int]) -> dict[str, tuple[float, float]]:
    episodes = [run_episode(policy, env, seed=s) for s in seeds]
    return summarize(episodes, env.unwrapped.modalities)


def print_table(results: dict[str, dict[str, tuple[float, float]]], modalities: tuple[str, ...], n: int) -> None:
    cols = ["return", "val_acc", "test_fused_acc", *(f"test_{m}_acc" for m in modalities), "test_fused_f1"]
    table = Table(title=f"Final comparison, mean ± std over {n} seed(s) (accuracy in %)")
    table.add_column("policy")
    for c in cols:
        table.add_column(c.replace("test_", "test ").replace("_", " "), justify="right")
    for name, row in results.items():
        cells = []
        for c in cols:
            mean, std = row.get(c, (float("nan"), 0.0))
            scale = 1.0 if c == "return" else 100.0
            cells.append(f"{scale * mean:.2f} ± {scale * std:.2f}")
        table.add_row(name, *cells)
    Console(width=max(120, Console().width)).print(table)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    if args.env not in gym.registry:
        raise SystemExit(f"unknown env id {args.env!r}; valid ids: {', '.join(mmrl_env.env_ids())}")
    if args.algo not in algo_names():
        raise SystemExit(f"unknown algo {args.algo!r}; valid algos: {', '.join(algo_names())}")
    hp = load_hyperparams(args.algo, args.env, args.config)
    if args.algo in LEARNED:
        check_algo_kwargs(LEARNED[args.algo], hp, args.config or f"configs/{args.algo}.yaml")
    env_kwargs = deep_merge(hp.pop("env_kwargs", {}) or {}, parse_kv(args.env_kwargs))
    env_kwargs.setdefault("device", args.device)
    if args.algo in HEURISTICS:  # the env settings the heuristic stands for; the user's keys win
        env_kwargs = deep_merge(HEURISTICS[args.algo].env_kwargs, env_kwargs)
    total = args.total_timesteps or int(hp.pop("n_timesteps", DEFAULT_TIMESTEPS))
    hp.pop("n_timesteps", None)
    eval_episodes = args.eval_episodes or int(hp.pop("eval_episodes", 3))
    hp.pop("eval_episodes", None)

    run_dir = next_run_dir(Path(args.log_folder), args.algo, args.env)
    tb_root = Path(args.tensorboard_log) if args.tensorboard_log else run_dir
    argv_used = sys.argv[1:] if argv is None else argv
    (run_dir / "command.txt").write_text(shlex.join(["python", "training/train_agent.py", *argv_used]) + "\n")
    resolved = {"env": args.env, "algo": args.algo, "seed": args.seed, "total_timesteps": total,
                "device": args.device, "eval_episodes": eval_episodes, "hyperparams": hp, "env_kwargs": env_kwargs}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))

    env = Monitor(TensorBoardInfo(gym.make(args.env, **env_kwargs), str(tb_root / "env")))
    agent = make_agent(args.algo, env, hp, seed=args.seed, device=agent_device(args.algo, args.device),
                       tensorboard_log=str(tb_root), verbose=args.verbose)
    print(f"run directory: {run_dir}")
    if args.algo in LEARNED:
        agent.learn(total_timesteps=total, progress_bar=not args.no_progress, tb_log_name="sb3")
        agent.save(run_dir / "model.zip")
    else:  # a heuristic: run it for the same number of steps so TensorBoard shows its behaviour
        obs, _ = env.reset(seed=args.seed)
        for _ in tqdm(range(total), desc=args.algo, disable=args.no_progress):
            obs, _, terminated, truncated, _ = env.step(agent.predict(obs)[0])
            if terminated or truncated:
                obs, _ = env.reset()
        agent.save(run_dir / "model.json")
    env.close()

    seeds = [args.seed + 10_000 + i for i in range(eval_episodes)]
    eval_env = gym.make(args.env, **env_kwargs)
    method = method_of(eval_env)
    baselines = args.baselines.split(",") if args.baselines else default_baselines(method, args.algo)
    if args.algo in HEURISTICS:  # a heuristic reads its env's settings: rebuild it on the env it is scored on
        agent = make_agent(args.algo, eval_env, hp, seed=args.seed)
    results = {args.algo: evaluate(agent, eval_env, seeds)}
    for name in tqdm(baselines, desc="baselines", disable=args.no_progress):
        if name not in HEURISTICS:
            raise SystemExit(f"unknown baseline {name!r}; heuristics: {', '.join(HEURISTICS)}")
        base_env = gym.make(args.env, **deep_merge(env_kwargs, HEURISTICS[name].env_kwargs))
        results[name] = evaluate(make_agent(name, base_env, seed=args.seed), base_env, seeds)
    (run_dir / "results.json").write_text(json.dumps({"seeds": seeds, "results": results}, indent=2))
    print_table(results, eval_env.unwrapped.modalities, len(seeds))
    print(f"saved: {run_dir}  (tensorboard --logdir {tb_root})")
    return run_dir


if __name__ == "__main__":
    main()
