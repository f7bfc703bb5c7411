"""The real-data stacks are optional extras: the Synthetic path works without them, and a
missing one is reported with the extra that installs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mmrl_env.extras import EXTRAS, MissingExtraError, require

ROOT = Path(__file__).resolve().parent.parent

BLOCK = "import sys\nfor m in ('soundfile', 'av', 'cv2', 'transformers', 'ray'):\n    sys.modules[m] = None\n"


def test_synthetic_and_every_module_import_without_the_real_data_stacks() -> None:
    code = BLOCK + (
        "import gymnasium as gym, mmrl_env, torch\n"
        "torch.set_num_threads(1)\n"
        "import mmrl_env.data.prepare, mmrl_env.data.cremad, mmrl_env.data.twitter2015, mmrl_env.models.text\n"
        "import mmrl_training.train_agent, mmrl_training.evaluate, mmrl_training.train_mml\n"
        "import mmrl_training.agent_training, mmrl_training.seed_comparison\n"
        "env = gym.make('DUS-Synthetic', epochs=1, val_size=50, device='cpu',\n"
        "               dataset_kwargs={'n_train': 128, 'n_val': 50, 'n_test': 50})\n"
        "env.reset(seed=0)\n"
        "env.step(env.action_space.sample())\n"
        "from mmrl_env.data.audio import read_audio\n"
        "try:\n"
        "    read_audio(__import__('pathlib').Path('x.wav'), 16000)\n"
        "except ModuleNotFoundError as err:\n"
        "    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert "reading wav files needs the optional package 'soundfile'" in out.stdout
    assert "pip install 'mmrl[audio-video]'" in out.stdout


@pytest.mark.parametrize("module", sorted(EXTRAS))
def test_missing_extra_names_the_extra(module: str, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match=rf"pip install 'mmrl\[{EXTRAS[module][0]}\]'"):
        require(module, "something")


def test_extras_in_pyproject_match() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for module, (extra, dist) in EXTRAS.items():
        assert any(req.startswith(dist) for req in extras[extra]), (module, extra)
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [r for r in core if r.split(">")[0] in {d for _, d in EXTRAS.values()}]
