"""The wheel ships py.typed; slow: the wheel ships the configs, and rl-zoo3 trains and replays
on our envs unchanged."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMALL_ZOO_ENV = ["epochs:1", "batch_size:32", "val_size:50", "dataset_kwargs:dict(n_train=192,n_val=50,n_test=50)",
                 "device:'cpu'"]  # the zoo evaluates values as Python


def run(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def test_wheel_ships_py_typed_and_namespaced_packages(tmp_path):
    """PEP 561: users' type checkers read mmrl_env's annotations only if the wheel holds
    ``mmrl_env/py.typed``. Built from a copy of the packaging inputs, so neither a stale
    ``build/`` of the checkout can hide a missing file nor does the test leave one behind."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("mmrl_env", "agents", "training", "configs"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "whl"),
         str(src)], tmp_path)
    wheel = next((tmp_path / "whl").glob("mmrl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "mmrl_env/py.typed" in names
    assert "mmrl_env/__init__.py" in names
    # namespaced import names only: no generic top-level ``agents`` / ``training`` in site-packages
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"mmrl_env", "mmrl_agents", "mmrl_training"}, top
    assert {"mmrl_agents/weights/dus_pretrained.pt", "mmrl_training/configs/ppo.yaml"} <= set(names)
    # the console scripts, next to python training/<cli>.py
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    for script in ("mmrl-train", "mmrl-evaluate", "mmrl-train-mml", "mmrl-pretrain", "mmrl-prepare"):
        assert f"{script} = " in entry_points, entry_points


@pytest.mark.parametrize("script", ["mmrl-train", "mmrl-evaluate", "mmrl-train-mml", "mmrl-prepare"])
def test_console_scripts_answer_help(script):
    """The installed console scripts run the CLIs (``--help``: exit 0, their usage line)."""
    path = shutil.which(script)
    if path is None:
        pytest.fail(f"{script} is not on PATH: install the project (pip install -e .) to get its console scripts")
    out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage:")


@pytest.mark.slow
def test_wheel_finds_the_shipped_configs_outside_the_checkout(tmp_path):
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "whl"),
         str(ROOT)], tmp_path)
    venv.create(tmp_path / "v", system_site_packages=True, with_pip=True)
    python = str(tmp_path / "v" / "bin" / "python")
    wheel = next((tmp_path / "whl").glob("mmrl-*.whl"))
    # --ignore-installed: the shared environment may hold an editable mmrl of the same version
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)], tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([python, "-c", "import mmrl_training.config as c; print(c.config_dir()); "
                          "print(c.load_hyperparams('ppo', 'BSS-Synthetic')['n_steps']); "
                          "import mmrl_env.data.mfeat as m; print(len(m.load_mfeat().train), m.EMBEDDED); "
                          "print((m.EMBEDDED.parent / 'README.md').is_file())"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    where, n_steps, n_train, embedded, attribution = out.stdout.split()
    site = tmp_path / "v" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert where == str(site / "mmrl_training" / "configs")
    # the embedded MFeat file and its attribution ship in the wheel (read from the install, not the checkout)
    assert (n_train, attribution) == ("1200", "True") and embedded.startswith(str(site))
    assert n_steps == "16"  # the BSS-Synthetic section of the shipped configs/ppo.yaml (8 batched runs)


@pytest.mark.slow
def test_rl_zoo_trains_and_replays(tmp_path):
    pytest.importorskip("rl_zoo3", reason="the optional extra: pip install -e '.[zoo]'")
    common = ["--algo", "ppo", "--env", "DUS-Synthetic", "--gym-packages", "mmrl_env", "-f", str(tmp_path / "logs")]
    run([sys.executable, "-m", "rl_zoo3.train", *common, "-conf", str(ROOT / "configs" / "ppo.yaml"), "-n", "32",
         "-params", "n_steps:16", "batch_size:16", "--eval-freq", "-1", "--seed", "0",
         "--env-kwargs", *SMALL_ZOO_ENV], tmp_path, PYTHONPATH=str(ROOT))
    assert (tmp_path / "logs" / "ppo" / "DUS-Synthetic_1" / "DUS-Synthetic.zip").is_file()
    out = run([sys.executable, "-m", "rl_zoo3.enjoy", *common, "-n", "8", "--no-render"], tmp_path,
              PYTHONPATH=str(ROOT))
    assert "Mean reward" in out.stdout
