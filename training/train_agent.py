"""Train an agent (or run a heuristic) on an mmrl environment; compare with baselines.

    python training/train_agent.py --env DUS-Synthetic                 # PPO, defaults
    python training/train_agent.py --env DUS-Synthetic --algo dus-h    # a heuristic policy
    python training/train_agent.py --env DUS-Synthetic --algo sac -c configs/sac.yaml \
        --env-kwargs epochs=4 dataset_kwargs.n_train=1000

The run directory (``--log-folder``/<algo>/<env>_<n>) keeps the saved agent, the resolved
config, the command line, the TensorBoard events (``env/``: the policy's per-step
quantities; ``sb3_1/``: SB3's training curves) and ``results.json`` (the final table).
``--save-freq N`` checkpoints the whole run (agent, env, RNGs) every N env steps, Ctrl-C
checkpoints and stops, and ``--resume <run dir>`` continues to the same result as an
uninterrupted run (``agents/checkpoint.py``). Checkpoints hold no code: ``--resume`` rebuilds
the agent from config.yaml and reads only tensors and plain values (``--trust-checkpoint``
lets SB3 unpickle the agent, for a run directory you trust). Bad input is refused before
the run directory is made: one line on stderr, exit status 2 (``training/cli_errors.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
from rich.console import Console
from rich.table import Table
from stable_baselines3.common.callbacks import CallbackList, EvalCallback
from stable_baselines3.common.monitor import Monitor
from tqdm import tqdm

import mmrl_env
from agents.checkpoint import (
    AGENT_ZIP,
    CHECKPOINTS,
    Checkpointer,
    CheckpointError,
    Interrupt,
    ResumableCheckpointCallback,
    latest_checkpoint,
    load_state,
    restore,
    restore_agent,
    restore_tensorboard,
)
from agents.factory import LEARNED, algo_names, make_agent, method_of
from agents.heuristics import HEURISTICS
from agents.rollout import run_episode, summarize
from mmrl_env.envs.tensorboard import TensorBoardInfo
from training.cli_errors import UsageError, run_cli
from training.config import deep_merge
from training.run_config import (
    DEFAULT_EVAL_FREQ,
    DEFAULT_TIMESTEPS,
    agent_device,
    make_env,
    new_run,
    resumed_run,
)
from training.run_dirs import RunLock, write_json_atomic

EVAL_EPISODES = 3  # per periodic evaluation; different inner-run seeds each time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default=None,
                   help=f"env id (default DUS-Synthetic), one of: {', '.join(mmrl_env.env_ids())}")
    p.add_argument("--algo", default=None, help=f"default ppo; one of: {', '.join(algo_names())}")
    p.add_argument("--seed", type=int, default=None, help="default 0")
    p.add_argument("-n", "--total-timesteps", type=int, default=None,
                   help=f"env steps to train for (default: config n_timesteps, else {DEFAULT_TIMESTEPS})")
    p.add_argument("-c", "--config", default=None, help="YAML hyperparameters, sections per env id "
                   "(default: configs/<algo>.yaml)")
    p.add_argument("--env-kwargs", nargs="*", default=None, metavar="KEY=VALUE",
                   help="env keyword arguments; dotted keys nest (dataset_kwargs.n_train=500)")
    p.add_argument("--device", default=None,
                   help="device of the inner training and the agent: auto (default), cpu, cuda")
    p.add_argument("-f", "--log-folder", default="runs", help="root of the run directories")
    p.add_argument("--tensorboard-log", default=None, help="TensorBoard root (default: the run directory)")
    p.add_argument("--eval-episodes", type=int, default=None, help="episodes (seeds) of the final comparison")
    p.add_argument("--baselines", default=None,
                   help="comma-separated heuristics to compare against (default: the method's heuristics)")
    p.add_argument("--eval-freq", type=int, default=None, metavar="N",
                   help=f"every N env steps, run the deterministic policy on {EVAL_EPISODES} episodes of a separate "
                   f"env and log eval/mean_reward (default {DEFAULT_EVAL_FREQ}; 0 = off; learning agents only)")
    p.add_argument("--save-freq", type=int, default=None, metavar="N",
                   help="checkpoint every N env steps (SB3 agents: at the first rollout boundary past each multiple)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its newest checkpoint, with the settings of its config.yaml")
    p.add_argument("--keep-checkpoints", type=int, default=None, metavar="N",
                   help="checkpoints kept (default 2: a damaged newest one falls back to the previous)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="with --resume: load the agent with SB3's own loader, which unpickles (runs code from) "
                   "agent.zip; only for a run directory you trust")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("-v", "--verbose", type=int, default=0)
    return p.parse_args(argv)


def default_baselines(method: str, algo: str) -> list[str]:
    """The method's own heuristics, then random actions."""
    names = [n for n, c in HEURISTICS.items() if method in c.methods] + ["random"]
    return [n for n in names if n != algo]


def evaluate(policy: Any, env: gym.Env, seeds: list[int]) -> tuple[dict[str, tuple[float, float]], int]:
    """Mean ± std of the final metrics over ``seeds``, and how many of those episodes diverged."""
    episodes = [run_episode(policy, env, seed=s) for s in seeds]
    return summarize(episodes, env.unwrapped.modalities), sum(bool(e["final"].get("diverged")) for e in episodes)


def print_table(results: dict[str, dict[str, tuple[float, float]]], modalities: tuple[str, ...], n: int,
                diverged: dict[str, int] | None = None) -> None:
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
            if mean is None or mean != mean:  # NaN, or null from JSON: no finite value to show
                cells.append("diverged" if (diverged or {}).get(name) else "n/a")
            else:
                cells.append(f"{scale * mean:.2f} ± {scale * std:.2f}")
        table.add_row(name, *cells)
    Console(width=max(120, Console().width)).print(table)
    for name, count in (diverged or {}).items():
        if count:
            print(f"{name}: the inner training diverged in {count} of {n} episode(s) (non-finite loss); "
                  "its test metrics are over the other episodes, 'diverged' where there are none")


def open_checkpoint(run_dir: Path, cfg: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The newest intact checkpoint of a resumed run and its state, checked against the run's env."""
    checkpoint = latest_checkpoint(run_dir, log=print)
    if checkpoint is None:
        raise UsageError(f"--resume {run_dir}: no intact checkpoint in {run_dir / CHECKPOINTS} "
                         "(was --save-freq set?)")
    try:
        state = load_state(checkpoint)
    except CheckpointError as err:
        raise UsageError(str(err)) from err
    if state["env_id"] != cfg["env"]:
        raise UsageError(f"checkpoint {checkpoint} is from env {state['env_id']}, the run is {cfg['env']}")
    return checkpoint, state


def build_agent(cfg: dict[str, Any], env: gym.Env, tb_root: Path, checkpoint: Path | None,
                state: dict[str, Any] | None, verbose: int, trust: bool = False) -> Any:
    """A fresh agent; when resuming, one rebuilt from the config with the checkpoint's tensors,
    counters and SAC replay buffer (``trust``: SB3's own ``load``, which unpickles)."""
    algo, device = cfg["algo"], agent_device(cfg["algo"], cfg["device"])
    if checkpoint is not None and algo in LEARNED and trust:
        return LEARNED[algo].load(checkpoint / AGENT_ZIP, env=env, device=device, tensorboard_log=str(tb_root),
                                  force_reset=False)  # keep _last_obs: the env continues, it does not restart
    agent = make_agent(algo, env, cfg["hyperparams"], seed=cfg["seed"], device=device,
                       tensorboard_log=str(tb_root), verbose=verbose)
    if checkpoint is not None and algo in LEARNED:
        try:
            restore_agent(agent, checkpoint, state or {})
        except CheckpointError as err:
            raise UsageError(str(err)) from err
    return agent


def run_heuristic(agent: Any, env: gym.Env, obs: Any, start: int, total: int, checkpointer: Checkpointer,
                  progress: bool) -> Any:
    """Step the heuristic from env step ``start`` to ``total`` (for its TensorBoard curves)."""
    checkpointer.last = start
    for t in tqdm(range(start, total), initial=start, total=total, desc=agent.name, disable=not progress):
        obs, _, terminated, truncated, _ = env.step(agent.predict(obs)[0])
        if terminated or truncated:
            obs, _ = env.reset()
        checkpointer.boundary(t + 1, obs=obs)
    return obs


def periodic_eval(cfg: dict[str, Any]) -> list[EvalCallback]:
    """SB3's EvalCallback on a separate env: the *deterministic* policy's return (= total
    validation gain of an inner run) as ``eval/mean_reward``. The training curves come from
    exploring (stochastic) episodes and can hide what the mean policy has learned. The
    evaluation env has its own generators, so training is unaffected by it."""
    freq = cfg.get("eval_freq", 0)
    if not freq:
        return []
    env = Monitor(make_env(cfg["env"], cfg["env_kwargs"]))
    env.reset(seed=cfg["seed"] + 20_000)  # apart from the training and final-comparison seeds
    return [EvalCallback(env, n_eval_episodes=EVAL_EPISODES, eval_freq=freq, deterministic=True, verbose=0)]


def train(cfg: dict[str, Any], run_dir: Path, args: argparse.Namespace) -> Any:
    """Train (or run the heuristic) up to ``total_timesteps``, from the newest checkpoint when
    resuming; checkpoint every ``--save-freq`` steps, at the end, and on Ctrl-C. Returns the agent."""
    algo, total = cfg["algo"], cfg["total_timesteps"]
    tb_root = Path(cfg["tensorboard_log"]) if cfg["tensorboard_log"] else run_dir
    env = Monitor(TensorBoardInfo(make_env(cfg["env"], cfg["env_kwargs"]), str(tb_root / "env")))
    checkpoint, state = open_checkpoint(run_dir, cfg) if args.resume else (None, None)
    agent = build_agent(cfg, env, tb_root, checkpoint, state, args.verbose, args.trust_checkpoint)
    if state is not None:
        restore(state, agent, env)
        print(f"resuming from {checkpoint} (env step {state['steps']} of {total})")
    save_freq = cfg.get("save_freq")
    with Interrupt() as interrupt:
        checkpointer = Checkpointer(run_dir, agent, env, save_freq, interrupt, cfg.get("keep_checkpoints") or 2,
                                    {"config": cfg})
        if algo in LEARNED:
            callbacks = [ResumableCheckpointCallback(checkpointer), *periodic_eval(cfg)]
            if state is not None:  # replayed steps overwrite, not duplicate, the TensorBoard points
                callbacks.append(restore_tensorboard(env, state["steps"]))
            agent.learn(total_timesteps=total - agent.num_timesteps, callback=CallbackList(callbacks),
                        progress_bar=not args.no_progress, tb_log_name="sb3", reset_num_timesteps=state is None)
            steps, extra = agent.num_timesteps, {}
            agent.save(run_dir / "model.zip")
        else:  # a heuristic: run it for the same number of steps so TensorBoard shows its behaviour
            obs, start = (env.reset(seed=cfg["seed"])[0], 0) if state is None else (state["obs"], state["steps"])
            if state is not None:
                restore_tensorboard(env, start)
            steps, extra = total, {"obs": run_heuristic(agent, env, obs, start, total, checkpointer,
                                                        not args.no_progress)}
            agent.save(run_dir / "model.json")
        if save_freq:  # a crash in the final comparison then resumes without training again
            checkpointer.save(steps, **extra)
    env.close()
    return agent


def final_comparison(cfg: dict[str, Any], run_dir: Path, agent: Any, no_progress: bool) -> None:
    """Score the agent and the baselines on the same held-out seeds; write results.json."""
    algo, env_kwargs = cfg["algo"], cfg["env_kwargs"]
    seeds = [cfg["seed"] + 10_000 + i for i in range(cfg["eval_episodes"])]
    eval_env = make_env(cfg["env"], env_kwargs)
    baselines = cfg["baselines"] or default_baselines(method_of(eval_env), algo)
    if algo in HEURISTICS:  # a heuristic reads its env's settings: rebuild it on the env it is scored on
        agent = make_agent(algo, eval_env, cfg["hyperparams"], seed=cfg["seed"])
    results, diverged = {}, {}
    results[algo], diverged[algo] = evaluate(agent, eval_env, seeds)
    for name in tqdm(baselines, desc="baselines", disable=no_progress):
        base_env = make_env(cfg["env"], deep_merge(env_kwargs, HEURISTICS[name].env_kwargs))
        results[name], diverged[name] = evaluate(make_agent(name, base_env, seed=cfg["seed"]), base_env, seeds)
    # strict JSON: a metric with no finite value (every episode diverged) is null, and "diverged" says why
    write_json_atomic(run_dir / "results.json", {"seeds": seeds, "results": results, "diverged": diverged})
    print_table(results, eval_env.unwrapped.modalities, len(seeds), diverged)
    tb_root = cfg["tensorboard_log"] or run_dir
    print(f"saved: {run_dir}  (tensorboard --logdir {tb_root})")


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    if args.trust_checkpoint and not args.resume:
        raise UsageError("--trust-checkpoint applies to --resume only")
    argv_used = sys.argv[1:] if argv is None else argv
    run_dir, cfg = resumed_run(args, argv_used) if args.resume else new_run(args, argv_used)
    print(f"run directory: {run_dir}")
    try:
        try:
            agent = train(cfg, run_dir, args)
        except KeyboardInterrupt as stop:
            checkpoint = latest_checkpoint(run_dir, log=print)
            where = f"newest checkpoint: {checkpoint}" if checkpoint else "no checkpoint was written (see --save-freq)"
            print(f"\ninterrupted; {where}\ncontinue with: python training/train_agent.py --resume {run_dir}")
            raise SystemExit(130) from stop
        final_comparison(cfg, run_dir, agent, args.no_progress)
    finally:
        RunLock.release_dir(run_dir)  # the run is no longer this process's (also released if it dies)
    return run_dir


if __name__ == "__main__":
    run_cli(main)
