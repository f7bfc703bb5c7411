"""What ``training/train_agent.py`` runs once its arguments are parsed: the run directory,
training (or a heuristic's steps), checkpoints, the final comparison with the baselines.

Kept apart from the CLI's module so that ``--help`` and argparse's errors come without
importing torch, SB3 and the rest (issue 27).
"""

from __future__ import annotations

import argparse
import threading
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3.common.callbacks import CallbackList, EvalCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor
from tqdm import tqdm

from mmrl_agents.factory import LEARNED, make_agent
from mmrl_agents.heuristics import HEURISTICS
from mmrl_agents.vec_env import MMRLVecEnv, VecTensorBoard
from mmrl_env.determinism import set_deterministic
from mmrl_env.envs.registration import env_method, versioned_id
from mmrl_env.envs.tensorboard import TensorBoardInfo, write_config
from mmrl_training import ray_cluster
from mmrl_training.checkpoint import (
    AGENT_ZIP,
    CHECKPOINTS,
    Checkpointer,
    CheckpointError,
    Interrupt,
    ResumableCheckpointCallback,
    latest_checkpoint,
    load_parameters,
    load_state,
    restore,
    restore_agent,
    restore_tensorboard,
)
from mmrl_training.cli_errors import UsageError, message_of
from mmrl_training.config import DEFAULT_BASELINES
from mmrl_training.evaluation import Policy, evaluate
from mmrl_training.run_config import RunConfig, agent_device, make_env, make_runs, make_vec_env
from mmrl_training.run_dirs import RunLock, remove_run_dir, write_json_atomic
from mmrl_training.run_setup import RunOptions, open_run
from mmrl_training.schedule import ScheduleCallback, ScheduleRecorder

# the agent's final results in the hparams tab: summary column -> hparam name
HPARAM_METRICS = {"return": "return", "val_acc": "val_acc", "fused_acc": "test_fused_acc", "fused_f1": "test_fused_f1"}


def default_baselines(method: str, algo: str) -> list[str]:
    """The method's own heuristics, then random actions."""
    names = [n for n, c in HEURISTICS.items() if method in c.methods] + ["random"]
    return [n for n in names if n != algo]


def open_checkpoint(run_dir: Path, cfg: RunConfig) -> tuple[Path, dict[str, Any]]:
    """The newest intact checkpoint of a resumed run and its state, checked against the run's env."""
    checkpoint = latest_checkpoint(run_dir, log=print)
    if checkpoint is None:
        raise UsageError(f"--resume {run_dir}: no intact checkpoint in {run_dir / CHECKPOINTS} "
                         "(was --save-freq set?)")
    try:
        state = load_state(checkpoint)
    except CheckpointError as err:
        raise UsageError(str(err)) from err
    if versioned_id(state["env_id"] or "") != versioned_id(cfg.env.id):  # DUS-Synthetic is DUS-Synthetic-v0
        raise UsageError(f"checkpoint {checkpoint} is from env {state['env_id']}, the run is {cfg.env.id}")
    return checkpoint, state


def load_trained_agent(cfg: RunConfig, env: Any, tb_root: Path, device: str, verbose: int,
                       trust: bool) -> Any:
    """``-i``: the saved agent, on this run's env, to train for ``total_timesteps`` more steps.
    Its networks come from the tensors of the zip only (``trust``: SB3's own ``load``)."""
    path, algo, seed = Path(cfg.agent.trained_agent or ""), cfg.agent.algo, cfg.agent.seed
    if trust:
        try:
            agent = LEARNED[algo].load(path, env=env, device=device, tensorboard_log=str(tb_root), verbose=verbose)
        except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as err:
            raise UsageError(f"-i {path}: cannot continue it as a {algo} agent on {cfg.env.id}: {err}") from err
    else:
        agent = make_agent(algo, env, cfg.agent.hyperparams, seed=seed, device=device,
                           tensorboard_log=str(tb_root), verbose=verbose)
        try:
            load_parameters(agent, path)
        except CheckpointError as err:
            raise UsageError(f"-i {path}: {err}") from err
    agent.set_random_seed(seed)
    agent.num_timesteps = 0  # this run counts its own steps
    return agent


def build_agent(cfg: RunConfig, env: gym.Env, tb_root: Path, checkpoint: Path | None,
                state: dict[str, Any] | None, verbose: int, trust: bool = False) -> Any:
    """A fresh agent, the ``-i`` agent, or, when resuming, one rebuilt from the config with the
    checkpoint's tensors, counters and SAC replay buffer (``trust``: SB3's own ``load``, which
    unpickles)."""
    algo, device = cfg.agent.algo, agent_device(cfg.agent.algo, cfg.agent.device)
    if checkpoint is None and cfg.agent.trained_agent:
        return load_trained_agent(cfg, env, tb_root, device, verbose, trust)
    if checkpoint is not None and algo in LEARNED and trust:
        return LEARNED[algo].load(checkpoint / AGENT_ZIP, env=env, device=device, tensorboard_log=str(tb_root),
                                  force_reset=False)  # keep _last_obs: the env continues, it does not restart
    agent = make_agent(algo, env, cfg.agent.hyperparams, seed=cfg.agent.seed, device=device,
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


def periodic_eval(cfg: RunConfig) -> list[EvalCallback]:
    """SB3's EvalCallback on a separate env: the *deterministic* policy's return (= total
    validation gain of an inner run) as ``eval/mean_reward``, and its schedule as the image
    ``eval/schedule`` (``mmrl_training.schedule``). The training curves come from
    exploring (stochastic) episodes and can hide what the mean policy has learned. The
    evaluation env has its own generators, so training is unaffected by it."""
    freq = cfg.evaluation.freq
    if not freq:
        return []
    base = recorder = ScheduleRecorder(make_env(cfg.env.id, cfg.env.kwargs))  # eval/schedule's episodes
    base.reset(seed=cfg.agent.seed + 20_000)  # apart from the training and final-comparison seeds
    recorder.take()
    if cfg.ray or (cfg.env.n_envs > 1 and cfg.env.vec_env == "batched"):
        env: Any = VecMonitor(DummyVecEnv([lambda: base]))  # the training env's wrapper type: no SB3 warning
    else:
        env = Monitor(base)
    calls = max(freq // cfg.env.n_envs, 1)  # the callback counts vectorised steps
    return [EvalCallback(env, n_eval_episodes=cfg.evaluation.periodic_episodes, eval_freq=calls,
                         deterministic=True, verbose=0, callback_after_eval=ScheduleCallback(recorder, cfg.env.id))]


def vec_env(cfg: RunConfig, tb_root: Path) -> VecEnv:
    """``--n-envs`` K inner runs for a learned agent. ``--vec-env batched`` (default): one mmrl
    vector env whose K runs train as one batched engine step (``gym.make_vec(...,
    vectorization_mode="vector_entry_point")`` through ``mmrl_agents.vec_env.MMRLVecEnv``), logging
    to ``env/``; checkpoints cover it. ``dummy`` / ``subproc``: K copies of the single env in
    SB3's DummyVecEnv or SubprocVecEnv (copy i logs to ``env_<i>/``; no checkpoints). With
    ``--ray``: the K runs spread over ``--ray-workers`` Ray actors (``RayVectorEnv``), as batched."""
    env, log_test = cfg.env, cfg.output.log_test
    if cfg.ray:
        venv = ray_cluster.make_vec_env(env.id, env.n_envs, env.kwargs, cfg.ray)
        return VecMonitor(VecTensorBoard(MMRLVecEnv(venv), str(tb_root / "env"), log_test))
    if env.vec_env == "batched":
        venv = make_vec_env(env.id, env.n_envs, env.kwargs)
        return VecMonitor(VecTensorBoard(MMRLVecEnv(venv), str(tb_root / "env"), log_test))
    make_env(env.id, env.kwargs).close()  # a bad setting fails here, with its message

    def factory(i: int) -> Any:
        log_dir = str(tb_root / ("env" if i == 0 else f"env_{i}"))
        return lambda: Monitor(TensorBoardInfo(make_env(env.id, env.kwargs), log_dir, log_test=log_test))

    cls = SubprocVecEnv if env.vec_env == "subproc" else DummyVecEnv
    return cls([factory(i) for i in range(env.n_envs)])


def train(cfg: RunConfig, run_dir: Path, options: RunOptions, started: threading.Event) -> Any:
    """Train (or run the heuristic) up to ``total_timesteps``, from the newest checkpoint when
    resuming; checkpoint every ``--save-freq`` steps, at the end, and on Ctrl-C. Returns the agent.
    With ``--n-envs`` K > 1 a learned agent collects from K inner runs at once (``vec_env``).
    ``started`` is set once the env and agent are built and the first step is next."""
    tb_root = Path(cfg.output.tensorboard_log or run_dir)
    if cfg.vectorised:
        env = vec_env(cfg, tb_root)
    else:
        env = Monitor(TensorBoardInfo(make_env(cfg.env.id, cfg.env.kwargs), str(tb_root / "env"),
                                      log_test=cfg.output.log_test))
    try:
        return train_on(env, cfg, run_dir, options, tb_root, started)
    finally:  # also when stopped: a Ray env's actors hold their cluster resources until closed
        env.close()


def train_on(env: Any, cfg: RunConfig, run_dir: Path, options: RunOptions, tb_root: Path,
             started: threading.Event) -> Any:
    """``train``'s work on the env it made."""
    algo, total = cfg.agent.algo, cfg.agent.total_timesteps
    checkpoint, state = open_checkpoint(run_dir, cfg) if options.resume else (None, None)
    agent = build_agent(cfg, env, tb_root, checkpoint, state, options.verbose, options.trust_checkpoint)
    if state is not None:
        try:
            restore(state, agent, env)
        except CheckpointError as err:
            raise UsageError(f"--resume {run_dir}: checkpoint {checkpoint}: {err}") from err
        except ValueError as err:  # e.g. a resume with --allow-data-change on data of other sizes
            raise UsageError(f"--resume {run_dir}: the newest checkpoint does not fit this run's env: "
                             f"{message_of(err)}") from err
        print(f"resuming from {checkpoint} (env step {state['steps']} of {total})")
    started.set()
    with Interrupt() as interrupt:
        checkpointer = Checkpointer(run_dir, agent, env, cfg.output.save_freq, interrupt,
                                    cfg.output.keep_checkpoints, {"config": cfg.to_dict()})
        if algo in LEARNED:
            callbacks = [ResumableCheckpointCallback(checkpointer), *periodic_eval(cfg)]
            if state is not None:  # replayed steps overwrite, not duplicate, the TensorBoard points
                callbacks.append(restore_tensorboard(env, state["steps"]))
            agent.learn(total_timesteps=total - agent.num_timesteps, callback=CallbackList(callbacks),
                        progress_bar=options.progress, tb_log_name="sb3", reset_num_timesteps=state is None)
            steps, extra = agent.num_timesteps, {}
            agent.save(run_dir / "model.zip")
        else:  # a heuristic: run it for the same number of steps so TensorBoard shows its behaviour
            obs, start = (env.reset(seed=cfg.agent.seed)[0], 0) if state is None else (state["obs"], state["steps"])
            if state is not None:
                restore_tensorboard(env, start)
            steps, extra = total, {"obs": run_heuristic(agent, env, obs, start, total, checkpointer,
                                                        options.progress)}
            agent.save(run_dir / "model.json")
        if cfg.env.n_envs == 1 or cfg.env.vec_env == "batched":  # envs a checkpoint covers
            checkpointer.end(steps, **extra)  # the final comparison can resume; a Ctrl-C in the last rollout stops here
    return agent


def final_comparison(cfg: RunConfig, run_dir: Path, agent: Any, no_progress: bool) -> None:
    """Score the agent and the baselines on the same held-out seeds with the one evaluation
    (``mmrl_training.evaluation``, as ``evaluate.py``): results.json, the report files and plots of
    ``evaluate.py`` in the run directory, the table and the paired comparison in the terminal."""
    algo, env_id, env_kwargs, seed = cfg.agent.algo, cfg.env.id, cfg.env.kwargs, cfg.agent.seed
    seeds = [seed + 10_000 + i for i in range(cfg.evaluation.episodes)]
    method = env_method(env_id)  # from the env's spec: no env built to read it
    if algo in HEURISTICS:  # a heuristic reads its env's settings: built on the env it is scored on
        rows = [Policy(algo, env_kwargs, heuristic=algo, params=dict(cfg.agent.hyperparams), seed=seed)]
    else:
        rows = [Policy(algo, env_kwargs, agent=agent)]
    rows += [Policy.of_heuristic(name, env_kwargs, seed)
             for name in cfg.evaluation.baselines or default_baselines(method, algo) if name != algo]
    names = [row.name for row in rows]
    baseline = DEFAULT_BASELINES.get(method)
    baseline = baseline if baseline in names else names[min(1, len(names) - 1)]
    result = evaluate(env_id, rows, seeds, baseline, partial(make_runs, ray=cfg.ray), progress=not no_progress)
    write_json_atomic(run_dir / "results.json", result.to_json())  # strict JSON: no finite value is null
    result.print_tables(f"Final comparison on {env_id}, held-out seeds")
    result.write(run_dir, f"{env_id}: final comparison of {algo} and its baselines")
    tb_root = cfg.output.tensorboard_log or run_dir
    write_config(tb_root, cfg.to_dict(), {HPARAM_METRICS[k]: v[0] for k, v in result.summary[algo].items()
                                          if k in HPARAM_METRICS})
    print(f"saved: {run_dir}  (tensorboard --logdir {tb_root})")


def run(args: argparse.Namespace, argv_used: list[str]) -> Path:
    """The run of ``train_agent.py``'s checked ``args`` (``argv_used``: its command line): make
    or reopen the run directory, train, compare; Ctrl-C leaves the newest checkpoint."""
    run_dir, cfg, options = open_run(args, argv_used)
    folders = [Path(f) for f in (run_dir, cfg.output.tensorboard_log) if f]
    started = threading.Event()
    try:
        train_and_compare(cfg, run_dir, options, started)
    except BaseException:
        if not options.resume and not started.is_set():  # failed before its first step: nothing worth keeping
            for folder in folders:
                remove_run_dir(folder)
        raise
    finally:  # the run is no longer this process's (also released if it dies)
        for folder in folders:
            RunLock.release_dir(folder)
    return run_dir


def train_and_compare(cfg: RunConfig, run_dir: Path, options: RunOptions, started: threading.Event) -> None:
    """``run``'s work in its run directory; a Ctrl-C says how to continue and exits with 130."""
    try:
        if cfg.deterministic:  # before any CUDA work; a resumed run keeps its run's setting
            set_deterministic()
        ray_cluster.connect(cfg.ray)  # the training env and the final comparison
        print(f"run directory: {run_dir}")
        if not options.resume:
            write_config(cfg.output.tensorboard_log or run_dir, cfg.to_dict())
        agent = train(cfg, run_dir, options, started)
        final_comparison(cfg, run_dir, agent, not options.progress)
    except KeyboardInterrupt as stop:  # in training or in the final comparison
        checkpoint = latest_checkpoint(run_dir, log=print)
        if checkpoint:
            print(f"\ninterrupted; newest checkpoint: {checkpoint}\n"
                  f"continue with: python training/train_agent.py --resume {run_dir}")
        else:
            print("\ninterrupted before any checkpoint was written (the first Ctrl-C saves one at the next "
                  "boundary; see also --save-freq); start the run again")
        raise SystemExit(130) from stop
