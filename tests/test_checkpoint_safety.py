"""Checkpoints hold no code, survive damage, and a run directory has one owner.

Security: a crafted ``state.pt`` (a pickle that runs a command) and a crafted ``agent.zip``
(a ``:serialized:`` entry that runs one) must not run on ``--resume`` or in ``evaluate.py``.
Damage: a truncated state, a missing agent file, an empty config.yaml, a truncated
results.json each resume (falling back to the previous checkpoint) with a message.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import re
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from mmrl_training import checkpoint, evaluate
from mmrl_training.run_dirs import RunLock, create_run_dir, write_json_atomic
from mmrl_training.train_agent import main

SMALL_ENV = ["epochs=1", "batch_size=32", "val_size=50", "dataset_kwargs.n_train=192",
             "dataset_kwargs.n_val=50", "dataset_kwargs.n_test=50", "device=cpu"]


def args(algo: str, root: Path, total: int, cfg: Path | None = None) -> list[str]:
    return ["--algo", algo, "-f", str(root), "-n", str(total), "--eval-episodes", "1", "--baselines", "uniform",
            "--no-progress", *(["-c", str(cfg)] if cfg else []), "--env-kwargs", *SMALL_ENV]


def ppo_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text(yaml.safe_dump({"default": {"n_steps": 4, "batch_size": 4, "n_epochs": 1}}))
    return cfg


def crash_after(monkeypatch, saves: int) -> None:
    """The process dies right after its ``saves``-th checkpoint is on disk."""
    save, count = checkpoint.Checkpointer.save, []

    def save_then_die(self, steps, **extra):
        path = save(self, steps, **extra)
        count.append(path)
        if len(count) == saves:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(checkpoint.Checkpointer, "save", save_then_die)


def crashed_run(monkeypatch, argv: list[str], saves: int) -> Path:
    crash_after(monkeypatch, saves)
    with pytest.raises(SystemExit):
        main(argv)
    monkeypatch.undo()
    root = Path(argv[argv.index("-f") + 1])
    return next(p for p in root.glob("*/*") if p.is_dir())


def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


class Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def reseal(ckpt: Path) -> None:
    """An attacker who rewrites a file can rewrite the manifest's checksum too."""
    manifest = json.loads((ckpt / checkpoint.MANIFEST).read_text())
    manifest["files"] = {name: checkpoint.sha256(ckpt / name) for name in manifest["files"]}
    (ckpt / checkpoint.MANIFEST).write_text(json.dumps(manifest))


def plant_serialized_payload(zip_path: Path, marker: Path) -> None:
    """Replace agent.zip's ``data`` entry ``_last_obs`` with a cloudpickle that runs a command."""
    with zipfile.ZipFile(zip_path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    data = json.loads(entries["data"])
    data["_last_obs"] = {":type:": "<class 'numpy.ndarray'>",
                         ":serialized:": base64.b64encode(pickle.dumps(Payload(marker))).decode()}
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(zip_path, "w") as z:
        for name, blob in entries.items():
            z.writestr(name, blob)


def test_crafted_state_is_refused_without_running(tmp_path, monkeypatch, capsys):
    run = crashed_run(monkeypatch, ["--save-freq", "2", *args("random", tmp_path / "r", 6)], saves=1)
    ckpt = checkpoint.latest_checkpoint(run)
    marker = tmp_path / "pwned_state"
    (ckpt / checkpoint.STATE).write_bytes(pickle.dumps({"format": 2, "x": Payload(marker)}))
    with pytest.raises(SystemExit, match="no intact checkpoint"):  # checksum mismatch: damaged, skipped
        main(["--resume", str(run), "--no-progress"])
    assert "state.pt does not match its checksum" in capsys.readouterr().out
    reseal(ckpt)
    with pytest.raises(SystemExit) as refused:
        main(["--resume", str(run), "--no-progress"])
    message = str(refused.value)  # in our words: what it holds and what to do, not torch's page-long text
    assert re.search(r"state.pt refused without running it: it holds (pickled Python objects|a reference to the "
                     r"Python callable (posix|os)\.system)", message)
    assert "--trust-checkpoint" in message and "WeightsUnpickler" not in message and len(message) < 500
    assert not marker.exists(), "loading the checkpoint ran code"


def test_crafted_agent_zip_never_runs(tmp_path, monkeypatch):
    cfg = ppo_config(tmp_path)
    straight = main(args("ppo", tmp_path / "a", 12, cfg))
    run = crashed_run(monkeypatch, ["--save-freq", "4", *args("ppo", tmp_path / "b", 12, cfg)], saves=1)
    ckpt = checkpoint.latest_checkpoint(run)
    marker = tmp_path / "pwned_agent"
    plant_serialized_payload(ckpt / checkpoint.AGENT_ZIP, marker)
    reseal(ckpt)
    main(["--resume", str(run), "--no-progress"])  # the planted entry is never read: the run resumes exactly
    assert not marker.exists() and results(run) == results(straight)
    plant_serialized_payload(run / "model.zip", marker)
    evaluate.main(["--policies", f"ppo:{run}", "--seeds", "1", "--out", str(tmp_path / "e"), "--no-progress",
                   "--env-kwargs", "device=cpu"])
    assert not marker.exists() and (tmp_path / "e" / "results.md").exists()


def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, monkeypatch, capsys):
    straight = main(args("random", tmp_path / "a", 8))
    run = crashed_run(monkeypatch, ["--save-freq", "2", *args("random", tmp_path / "b", 8)], saves=2)
    assert [checkpoint.steps_of(p) for p in checkpoint.checkpoints(run)] == [4, 2]
    state = checkpoint.checkpoints(run)[0] / checkpoint.STATE
    state.write_bytes(state.read_bytes()[:100])  # truncated (a full disk, an interrupted copy)
    main(["--resume", str(run), "--no-progress"])
    out = capsys.readouterr().out
    assert "step_000000000004 is damaged: state.pt does not match its checksum" in out
    assert "resuming from" in out and "step_000000000002" in out
    assert results(run) == results(straight)


def test_missing_agent_file_falls_back(tmp_path, monkeypatch, capsys):
    cfg = ppo_config(tmp_path)
    straight = main(args("ppo", tmp_path / "a", 12, cfg))
    run = crashed_run(monkeypatch, ["--save-freq", "4", *args("ppo", tmp_path / "b", 12, cfg)], saves=2)
    (checkpoint.checkpoints(run)[0] / checkpoint.AGENT_ZIP).unlink()
    main(["--resume", str(run), "--no-progress"])
    assert "agent.zip is missing" in capsys.readouterr().out
    assert results(run) == results(straight)


def test_empty_config_is_restored_from_the_checkpoint(tmp_path, monkeypatch, capsys):
    straight = main(args("random", tmp_path / "a", 6))
    run = crashed_run(monkeypatch, ["--save-freq", "3", *args("random", tmp_path / "b", 6)], saves=1)
    (run / "config.yaml").write_text("")
    main(["--resume", str(run), "--no-progress"])
    assert "config.yaml is damaged (it is empty); using the copy in" in capsys.readouterr().out
    assert results(run) == results(straight) and yaml.safe_load((run / "config.yaml").read_text())["algo"] == "random"


def test_truncated_results_are_redone_and_settings_survive_resume(tmp_path, monkeypatch, capsys):
    """--save-freq (in config.yaml) still applies after a resume: the final checkpoint is written,
    so a crash in the final comparison (here: a truncated results.json) resumes without training."""
    run = crashed_run(monkeypatch, ["--save-freq", "2", *args("random", tmp_path / "b", 6)], saves=1)
    main(["--resume", str(run), "--no-progress"])  # no --save-freq given here
    assert checkpoint.steps_of(checkpoint.latest_checkpoint(run)) == 6
    full = results(run)
    (run / "results.json").write_text((run / "results.json").read_text()[:40])
    main(["--resume", str(run), "--no-progress"])
    assert "results.json is damaged" in capsys.readouterr().out and results(run) == full
    with pytest.raises(SystemExit, match="has finished"):
        main(["--resume", str(run), "--no-progress"])


def test_refused_resume_changes_nothing_and_stale_temporaries_go(tmp_path, monkeypatch, capsys):
    run = crashed_run(monkeypatch, ["--save-freq", "2", *args("random", tmp_path / "b", 4)], saves=1)
    command = (run / "command.txt").read_text()
    with pytest.raises(SystemExit, match="cannot change it"):
        main(["--resume", str(run), "--seed", "4"])
    assert (run / "command.txt").read_text() == command
    stale = run / checkpoint.CHECKPOINTS / ".tmp_killed"
    stale.mkdir()
    main(["--resume", str(run), "--no-progress"])
    assert not stale.exists() and f"removed {stale}" in capsys.readouterr().out


def test_second_owner_is_refused(tmp_path, monkeypatch):
    run = crashed_run(monkeypatch, ["--save-freq", "2", *args("random", tmp_path / "b", 4)], saves=1)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time\n"
                               f"f = open({str(run / '.lock')!r}, 'a+'); f.write('process (test holder)')\n"
                               "f.flush(); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        command = (run / "command.txt").read_text()
        with pytest.raises(SystemExit, match="is in use by process"):
            main(["--resume", str(run), "--no-progress"])
        assert (run / "command.txt").read_text() == command
    finally:
        holder.kill()
        holder.wait()
    main(["--resume", str(run), "--no-progress"])  # the lock dies with its process
    assert (run / "results.json").exists()


def test_run_dir_races_take_the_next_free_name(tmp_path):
    made, errors, start = [], [], threading.Barrier(16)

    def make() -> None:
        start.wait()
        try:
            made.append(create_run_dir(tmp_path, "DUS-Synthetic"))
        except Exception as err:  # noqa: BLE001 - the test reports any failure
            errors.append(err)

    threads = [threading.Thread(target=make) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(p.name for p in made) == sorted(f"DUS-Synthetic_{i}" for i in range(1, 17))


def test_lock_is_exclusive_between_processes(tmp_path):
    lock = RunLock(tmp_path)
    probe = ("import fcntl\nf = open({!r}, 'a+')\ntry:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "    print('free')\nexcept BlockingIOError:\n    print('locked')").format(str(tmp_path / ".lock"))
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "locked"
    lock.release()
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "free"


def test_results_are_strict_json_and_written_atomically(tmp_path, monkeypatch):
    write_json_atomic(tmp_path / "r.json", {"a": [float("nan"), 1.0], "b": float("inf")})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": [None, 1.0], "b": None}

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dumps", lambda *a, **k: "{\"new\": 1}")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_json_atomic(tmp_path / "r.json", {})
    assert json.loads((tmp_path / "r.json").read_text())["b"] is None  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left


def test_diverged_run_says_so(tmp_path, capsys):
    run = main(["--algo", "uniform", "-f", str(tmp_path), "-n", "1", "--eval-episodes", "1", "--baselines", "random",
                "--no-progress", "--env-kwargs", *SMALL_ENV, "optim.lr=1e4"])
    text = (run / "results.json").read_text()
    saved = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in results.json"))
    assert saved["diverged"] == {"uniform": 1, "random": 1}
    assert saved["results"]["uniform"]["fused_acc"][0] is None  # no finite value: null
    out = capsys.readouterr().out
    assert "diverged" in out and "uniform: the inner training diverged in 1 of 1 episode(s)" in out


def tensorboard_points(logdir: Path, tag: str) -> list[int]:
    """Steps of ``tag`` as TensorBoard shows them: events files in order, and a session START at
    step s drops every earlier point at step >= s (what ``purge_step`` relies on)."""
    points: list[int] = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            if event.HasField("session_log") and event.session_log.status == event.session_log.START:
                points = [s for s in points if s < event.step]
            for value in event.summary.value:
                if value.tag == tag:
                    points.append(event.step)
    return points


def test_replayed_steps_are_not_duplicated_in_tensorboard(tmp_path, monkeypatch):
    from mmrl_env.envs.tensorboard import TensorBoardInfo

    step, calls = TensorBoardInfo.step, []

    def step_then_crash(self, action):
        out = step(self, action)
        self.writer.flush()
        calls.append(1)
        if len(calls) == 5:  # two steps past the checkpoint at step 3: those are replayed
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(TensorBoardInfo, "step", step_then_crash)
    with pytest.raises(SystemExit):
        main(["--save-freq", "3", *args("random", tmp_path, 8)])
    monkeypatch.undo()
    run = next(tmp_path.glob("random/*"))
    main(["--resume", str(run), "--no-progress"])
    assert tensorboard_points(run / "env", "step/reward") == list(range(1, 9))
