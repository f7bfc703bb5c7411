"""Small input, unbounded cost: every input a user hands us has a bound (``mmrl_env.limits``),
checked before the work or allocation it guards, with a message naming the input and the bound.

Each case here hung, ran the machine out of memory or allocated gigabytes before it was
refused (issue 22): billion-laughs and recursive YAML anchors, ``-c /dev/zero``, a small
``.npz`` that inflates to gigabytes, a batch far larger than the data, sizes that cannot be
allocated."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_bad_input import SMALL, bad_npz, cases, refused, train_refused, write

import mmrl_env  # noqa: F401 - registers the envs
from mmrl_agents.factory import make_agent
from mmrl_env import limits
from mmrl_env.bounded_input import ConfigTooLarge, load_yaml, npz_headers
from mmrl_env.data.npz import load_npz
from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.inner_run.stream import ShuffledStream
from mmrl_training import evaluate, train_mml

LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))  # 9**9 values
MERGES = "m0: &m0 {x0: 1, x1: 1}\n" + "".join(
    f"m{i + 1}: &m{i + 1} {{<<: [*m{i}, *m{i}], k{i}: 1}}\n" for i in range(40))  # merges of merges: 2**40 keys
INLINE_LAUGHS = "[&l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], " + ", ".join(
    f"&l{i + 1} [{', '.join([f'*l{i}'] * 10)}]" for i in range(6)) + "]"  # 10**7 values in one flag
YAML_BOMBS = {
    "billion laughs": (LAUGHS, "expands to more than 100,000 values"),
    "recursive list anchor": ("a: &a [1, *a]\n", "recursive anchor"),
    "recursive mapping anchor": ("a: &a {b: *a}\n", "recursive anchor"),
    "deep nesting": ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nests deeper than 64 levels"),
    "merge bomb": (MERGES, "a merge .* expands to more than 100,000 keys"),
}


@pytest.mark.parametrize(("text", "match"), list(YAML_BOMBS.values()), ids=list(YAML_BOMBS))
def test_the_yaml_loader_bounds_alias_expansion_and_nesting(text, match):
    with pytest.raises(ConfigTooLarge, match=f"^cfg.yaml: .*{match}"):
        load_yaml(text, "cfg.yaml")


def test_the_yaml_loader_keeps_bounded_anchors_and_merges():
    """The shipped configs share a section with ``<<: *default``: bounded aliases still work."""
    assert load_yaml("d: &d {a: 1, b: [1, 2]}\np: {<<: *d, b: 3}\nq: *d\n", "x") == {
        "d": {"a": 1, "b": [1, 2]}, "p": {"a": 1, "b": 3}, "q": {"a": 1, "b": [1, 2]}}


# (case id, argv, message); {tmp} is the test's tmp_path
BOUND_CASES = [
    ("-c /dev/zero", ["-c", "/dev/zero"], r"the config file /dev/zero is larger than 1,048,576 bytes"),
    ("laughs under policy_kwargs", ["-c", "{tmp}/pk.yaml"], r"pk.yaml: expands to more than 100,000 values"),
    ("laughs under env_kwargs", ["-c", "{tmp}/ek.yaml"], r"ek.yaml: expands to more than 100,000 values"),
    ("recursive anchor", ["-c", "{tmp}/rec.yaml"], r"rec.yaml: holds a recursive anchor"),
    ("anchor bomb in --env-kwargs", ["--env-kwargs", f"x={INLINE_LAUGHS}", *SMALL],
     r"the value of x: expands to more than 100,000 values"),
    ("recursive anchor in -params", ["-params", "policy_kwargs:&a {x: *a}"],
     r"the value of policy_kwargs: holds a recursive anchor"),
    ("batch larger than the split", ["--env-kwargs", "batch_size=100000", *SMALL],
     r"batch_size=100000 is larger than the training split \(64 samples"),
    ("n_train of 1e9", ["--env-kwargs", "dataset_kwargs.n_train=1000000000", "device=cpu"],
     r"n_train=1000000000 is above the limit of 10,000,000"),
    ("num_classes of 1e9", ["--env-kwargs", "dataset_kwargs.num_classes=1000000000", "device=cpu"],
     r"num_classes=1000000000 is above the limit of 100,000"),
    ("hidden width of 1e8", ["--env-kwargs", "dataset_kwargs.hidden=100000000", "device=cpu"],
     r"hidden=100000000 is above the limit of 65,536"),
    ("epochs of 1e12", ["--env-kwargs", "epochs=1000000000000", *SMALL], r"epochs=1000000000000 is above the limit"),
    ("net_arch width of 1e8", ["-params", "policy_kwargs:{net_arch: [100000000]}", "--env-kwargs", *SMALL],
     r"policy_kwargs.net_arch: width 100,000,000 is above the limit of 65,536"),
    ("net_arch of 10000 layers", ["-params", f"policy_kwargs:{{net_arch: {[4] * 10000}}}", "--env-kwargs", *SMALL],
     r"10000 layers is above the limit of 64"),
    ("buffer_size of 1e15", ["--algo", "sac", "-params", "buffer_size:1000000000000000", "--env-kwargs", *SMALL],
     r"buffer_size=1000000000000000 is above the limit"),
    ("Custom labels of 1e9", ["--env", "DUS-Custom", "--env-kwargs", "dataset_kwargs.root={tmp}/big_label",
                              "device=cpu"],
     r"big_label: the largest label \+ 1, i.e. num_classes=1000000001 is above the limit"),
]


@pytest.fixture
def bombs(tmp_path):
    """The issue's attacks: a billion laughs under a hyperparameter of a config section."""
    write(tmp_path / "pk.yaml", LAUGHS + "default:\n  policy_kwargs: {a: *i}\n")
    write(tmp_path / "ek.yaml", LAUGHS + "default:\n  env_kwargs: {a: *i}\n")
    write(tmp_path / "rec.yaml", "default: &d\n  policy_kwargs: {a: *d}\n")

    def big_label(arrays):
        arrays["labels"][0] = 10**9
        return arrays

    bad_npz(tmp_path / "big_label", train=big_label)
    return tmp_path


@pytest.mark.parametrize(("argv", "match"), cases(BOUND_CASES))
def test_train_agent_refuses_unbounded_input_before_any_work(bombs, capsys, argv, match):
    train_refused(bombs, capsys, argv, match)


@pytest.mark.parametrize(("main", "argv"), [(evaluate.main, ["--policies", "uniform", "--seeds", "1000000000"]),
                                           (train_mml.main, ["--seeds", "1000000000"])], ids=["evaluate", "train_mml"])
def test_a_seed_count_beyond_the_limit_is_refused(tmp_path, capsys, main, argv):
    refused(main, [*argv, "--no-progress"], capsys, r"seeds=1000000000 is above the limit of 10,000")


def zeros_npz(path, n: int) -> None:
    np.savez_compressed(path, a=np.zeros((n, 4), np.float32), labels=np.arange(n) % 2)


def test_a_small_npz_that_would_inflate_to_gigabytes_is_refused_before_allocating(tmp_path):
    """The issue's 3 MB file took 4.7 GB before it was refused; this one (0.5 MB on disk, 320 MB
    inflated) must be refused having allocated next to nothing."""
    root = tmp_path / "data"
    root.mkdir()
    zeros_npz(root / "train.npz", 20_000_000)
    zeros_npz(root / "test.npz", 10)
    assert (root / "train.npz").stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"train.npz: member 'a.npy' inflates .*x .*above the limit of 100x"):
            load_npz(root)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"{peak / 2**20:.0f} MiB allocated before the refusal"


def test_a_npz_above_the_data_limit_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "x.npz"
    np.savez(path, a=np.ones((1000, 10), np.float32))
    monkeypatch.setattr(limits, "MAX_DATA_BYTES", 10_000)
    with pytest.raises(ValueError, match=r"x.npz would take .* GiB once decompressed, above the limit"):
        npz_headers(path)


def test_a_npy_header_that_lies_about_its_shape_is_refused_before_allocating(tmp_path):
    """A header claiming 10**12 floats over 40 bytes of data would make np.load allocate 4 TB first."""
    def npy(header_shape: tuple[int, ...], data: np.ndarray) -> bytes:
        buf = io.BytesIO()
        header = np.lib.format.header_data_from_array_1_0(data)
        np.lib.format.write_array_header_1_0(buf, {**header, "shape": header_shape})
        return buf.getvalue() + data.tobytes()

    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.npy", npy((10**12,), np.ones(10, np.float32)))
        z.writestr("labels.npy", npy((10,), np.arange(10)))
    with pytest.raises(ValueError, match=r"array 'a' says shape \(1000000000000,\) .* but holds 40 bytes"):
        npz_headers(path)


def test_a_batch_larger_than_the_split_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"batch_size=500 is larger than the training split \(64 samples"):
        gym.make("DUS-Synthetic", batch_size=500, dataset_kwargs={"n_train": 64, "n_val": 20, "n_test": 20},
                 device="cpu")


def test_a_window_far_larger_than_the_split_is_refused_not_joined_forever():
    stream = ShuffledStream(10, torch.Generator().manual_seed(0))
    assert stream.next_window(20, 20).numel() == 20  # a window over two passes is fine (DUS's n_max)
    with pytest.raises(ValueError, match=r"a window of 1000000000000 samples over a split of 10"):
        stream.next_window(10**12, 10**12)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_train": 10**9}, r"n_train=1000000000 is above the limit"),
    ({"num_classes": 10**9, "group_size": 1}, r"num_classes=1000000000 is above the limit"),
    ({"weak_dim": 10**8}, r"weak_dim=100000000 is above the limit"),
    ({"n_val": 0}, r"n_val=0: expected a positive integer"),
])
def test_synthetic_sizes_are_checked_before_allocating(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_synthetic(**kwargs)


def test_net_arch_beyond_the_limit_is_refused_by_make_agent():
    env = gym.make("DUS-Synthetic", epochs=1, dataset_kwargs={"n_train": 64, "n_val": 20, "n_test": 20}, device="cpu")
    with pytest.raises(ValueError, match=r"net_arch.pi: width 10,000,000 is above the limit"):
        make_agent("ppo", env, {"policy_kwargs": {"net_arch": {"pi": [10**7], "vf": [64]}}})


def test_a_bound_is_read_when_checked_so_a_user_can_change_it(monkeypatch):
    monkeypatch.setattr(limits, "MAX_SAMPLES", 50)
    with pytest.raises(ValueError, match=r"n_train=64 is above the limit of 50 \(mmrl_env.limits"):
        load_synthetic(n_train=64)
    monkeypatch.setattr(limits, "MAX_SAMPLES", 10**8)
    assert len(load_synthetic(n_train=64, n_val=8, n_test=8).train) == 64


def test_a_pretrained_weights_file_is_bounded_and_must_hold_a_state_dict(tmp_path, monkeypatch):
    from mmrl_env.models.resnet import ResNetEncoder

    path = tmp_path / "w.pt"
    torch.save(torch.ones(3), path)
    with pytest.raises(ValueError, match=r"resnet18 weights .*w.pt holds a Tensor, not a state dict"):
        ResNetEncoder("resnet18", weights=path)
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    monkeypatch.setattr(limits, "MAX_DATA_BYTES", 1000)
    with pytest.raises(ValueError, match=r"resnet18 weights .*w.pt would take .* above the limit"):
        ResNetEncoder("resnet18", weights=path)
