"""Twitter2015 and Sarcasm end to end: real annotation formats + jpgs → cache → loader → env step.

A tiny WordPiece vocabulary is written here and saved as a local transformers tokenizer;
the text encoder is a tiny random BERT and the image encoder a ResNet50 without weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium
import gymnasium as gym
import numpy as np
import pytest
import torch

import mmrl_env  # noqa: F401  (registers the env ids)
from mmrl_env.data.cache import open_cache
from mmrl_env.data.fixtures_image_text import TINY_BERT, write_sarcasm, write_tokenizer, write_twitter2015
from mmrl_env.data.prepare import main as prepare
from mmrl_env.data.sarcasm import load_sarcasm
from mmrl_env.data.tokens import TokenizerNotFoundError, load_tokenizer, tokenize
from mmrl_env.data.twitter2015 import load_twitter2015, read_records

SIZE, LENGTH = 32, 16
TWITTER_SPLITS = {"train": 9, "dev": 6, "test": 3}


def run_prepare(command: str, raw: Path, out: Path, tokenizer: Path, *extra: str) -> int:
    return prepare([command, "--raw", str(raw), "--out", str(out), "--tokenizer", str(tokenizer),
                    "--size", str(SIZE), "--max-length", str(LENGTH), "--quiet", *extra])


def small(root: Path, **extra: object) -> dict[str, object]:
    """dataset_kwargs for CPU tests: no ImageNet file, tiny random BERT."""
    return {"root": str(root), "image_size": SIZE, "image_encoder": {"weights": None},
            "text_encoder": {"pretrained": False, "config": TINY_BERT}, **extra}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def twitter(tmp_path_factory: pytest.TempPathFactory, tokenizer: Path) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("twitter")
    write_twitter2015(base / "raw", TWITTER_SPLITS, size=40)
    assert run_prepare("twitter2015", base / "raw", base / "cache", tokenizer) == 0
    return base / "raw", base / "cache"


@pytest.fixture(scope="module")
def sarcasm(tmp_path_factory: pytest.TempPathFactory, tokenizer: Path) -> Path:
    base = tmp_path_factory.mktemp("sarcasm")
    write_sarcasm(base / "raw", {"train": 8, "valid": 4, "test": 2}, size=40)
    assert run_prepare("sarcasm", base / "raw", base / "cache", tokenizer) == 0
    return base / "cache"


def test_twitter_tsv_records(twitter) -> None:
    raw, _ = twitter
    rows = read_records(raw)
    assert [sum(r.split == s for r in rows) for s in ("train", "val", "test")] == [9, 6, 3]
    first = rows[0]
    assert first.id == "train.tsv:2" and first.label == 0 and first.image == "twitter2015_images/train_0.jpg"
    assert "$T$" not in first.text and first.text.startswith("RT @user : the movie the good")


def test_tokens_are_ids_and_mask(tokenizer: Path) -> None:
    tok = load_tokenizer(tokenizer)
    out = tokenize(tok, ["the good day", ""], 6)
    assert out.dtype == np.int64 and out.shape == (2, 2, 6)
    vocab = tok.get_vocab()
    assert out[0, 0, :5].tolist() == [vocab["[CLS]"], vocab["the"], vocab["good"], vocab["day"], vocab["[SEP]"]]
    assert out[0, 1].tolist() == [1, 1, 1, 1, 1, 0] and out[1, 1].tolist() == [1, 1, 0, 0, 0, 0]


def test_twitter_cache_layout(twitter, tokenizer: Path) -> None:
    _, cache = twitter
    c = open_cache(cache)
    assert c.manifest["written"] == 18 and c.manifest["failed"] == {}
    assert c.manifest["config"]["text"] == {"max_length": LENGTH, "tokenizer": str(tokenizer.resolve()),
                                            "vocab_size": TINY_BERT["vocab_size"]}
    image, text = np.load(cache / "image.npy", mmap_mode="r"), np.load(cache / "text.npy", mmap_mode="r")
    assert image.dtype == np.uint8 and image.shape == (18, 3, SIZE, SIZE) and image[0].std() > 0
    assert text.dtype == np.int64 and text.shape == (18, 2, LENGTH)
    assert c.labels[:9].tolist() == [0, 1, 2] * 3


def test_twitter_loader_and_gather(twitter) -> None:
    ds = load_twitter2015(**small(twitter[1]))
    assert (len(ds.train), len(ds.val), len(ds.test)) == (9, 6, 3)  # dev is the validation split
    assert ds.num_classes == 3 and ds.modality_names == ("image", "text")
    assert [m.encoder for m in ds.modalities] == ["resnet50", "bert"]
    assert ds.optim_defaults["name"] == "adam" and ds.optim_defaults["lr"] == 1e-5
    idx = torch.tensor([2, 0])
    image = ds.train.gather(0, idx, train=True)
    assert image.shape == (2, 3, SIZE, SIZE) and image.dtype == torch.float32
    text = ds.test.gather(1, idx)
    assert text.dtype == torch.long and text.shape == (2, 2, LENGTH)
    assert torch.equal(text, torch.from_numpy(np.load(twitter[1] / "text.npy")[15 + idx.numpy()]))


def test_env_step_on_twitter2015(twitter) -> None:
    env = gymnasium.make("DUS-Twitter2015", dataset_kwargs=small(twitter[1]), epochs=1, batch_size=4, val_size=4,
                         device="cpu")
    obs, _ = env.reset(seed=0)
    obs, reward, _, _, info = env.step(np.array([1.0, -1.0], np.float32))
    assert env.observation_space.contains(obs) and np.isfinite(reward)
    assert set(info["val_acc_modality"]) == {"image", "text"}
    env.close()


def test_env_step_on_sarcasm(sarcasm: Path) -> None:
    ds = load_sarcasm(**small(sarcasm))
    assert ds.num_classes == 2 and (len(ds.train), len(ds.val), len(ds.test)) == (8, 4, 2)
    env = gymnasium.make("DUS-Sarcasm", dataset_kwargs=small(sarcasm), epochs=1, batch_size=4, val_size=4,
                         device="cpu")
    env.reset(seed=0)
    _, reward, _, _, _ = env.step(np.zeros(2, np.float32))
    assert np.isfinite(reward)
    env.close()


def test_sarcasm_json_lines_without_validation_file(tmp_path: Path, tokenizer: Path) -> None:
    write_sarcasm(tmp_path / "raw", {"train": 8, "test": 2}, size=40, json_lines=True)
    assert run_prepare("sarcasm", tmp_path / "raw", tmp_path / "cache", tokenizer) == 0
    ds = load_sarcasm(**small(tmp_path / "cache"))
    assert len(ds.val) == 2 and len(ds.train) == 6  # stratified hold-out of train


def test_missing_and_corrupt_images_are_reported(tmp_path: Path, tokenizer: Path, capsys) -> None:
    write_twitter2015(tmp_path / "raw", {"train": 6, "dev": 3, "test": 3}, size=40)
    images = tmp_path / "raw" / "twitter2015_images"
    (images / "train_1.jpg").unlink()
    (images / "train_2.jpg").write_bytes(b"\xff\xd8 truncated")
    assert run_prepare("twitter2015", tmp_path / "raw", tmp_path / "cache", tokenizer) == 0
    out = capsys.readouterr().out
    assert "10 of 12 clips cached, 2 failed" in out
    assert "train.tsv:3: missing twitter2015_images/train_1.jpg" in out
    assert "train.tsv:4: corrupt twitter2015_images/train_2.jpg" in out
    assert run_prepare("twitter2015", tmp_path / "raw", tmp_path / "cache", tokenizer) == 0  # resumes
    assert "10 of 12 clips already cached" in capsys.readouterr().out


def test_missing_tokenizer_explains_where_to_put_bert(tmp_path: Path, capsys) -> None:
    write_twitter2015(tmp_path / "raw", {"train": 3, "dev": 3, "test": 3}, size=40)
    assert run_prepare("twitter2015", tmp_path / "raw", tmp_path / "cache", tmp_path / "no_tokenizer") == 2
    err = capsys.readouterr().err
    assert "bert-base-uncased" in err and "--tokenizer DIR" in err
    (tmp_path / "empty").mkdir()
    with pytest.raises(TokenizerNotFoundError, match="no usable tokenizer"):
        load_tokenizer(tmp_path / "empty")


def test_missing_root_and_raw_name_layout_and_command(tmp_path: Path, tokenizer: Path, capsys) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_twitter2015(root=tmp_path / "nowhere")
    assert "twitter2015_images/<image id>" in str(err.value)
    assert "python -m mmrl_env.data.prepare twitter2015 --raw <raw> --tokenizer" in str(err.value)
    with pytest.raises(FileNotFoundError, match="prepare sarcasm"):
        gymnasium.make("DUS-Sarcasm", dataset_kwargs={"root": str(tmp_path)})
    assert run_prepare("sarcasm", tmp_path / "absent", tmp_path / "c", tokenizer) == 2
    assert "{train,valid,test}.json" in capsys.readouterr().err


def test_malformed_annotations_name_file_and_line(tmp_path: Path, tokenizer: Path, capsys) -> None:
    write_twitter2015(tmp_path / "raw", {"train": 2, "dev": 2, "test": 2}, size=40)
    tsv = tmp_path / "raw" / "twitter2015" / "dev.tsv"
    tsv.write_text(tsv.read_text() + "7\t5\tx.jpg\ttext\ttarget\n")
    assert run_prepare("twitter2015", tmp_path / "raw", tmp_path / "cache", tokenizer) == 2
    assert f"{tsv}:4: expected 'index<TAB>label 0-2" in capsys.readouterr().err
    write_sarcasm(tmp_path / "sarc", {"train": 2, "test": 1}, size=40)
    (tmp_path / "sarc" / "test.json").write_text(json.dumps([{"image": "a", "text": "t"}]))
    assert run_prepare("sarcasm", tmp_path / "sarc", tmp_path / "c2", tokenizer) == 2
    assert "test.json: record 1: expected" in capsys.readouterr().err


def test_default_pretrained_weights_missing_is_explained(twitter, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="resnet50-0676ba61.pth"):
        load_twitter2015(root=twitter[1])
    # the tokenizer directory holds no config.json, so BERT comes from the (empty) HF cache; the
    # encoder's weights are resolved where it is built, and the env refuses at construction
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    data_kwargs = {"root": str(twitter[1]), "image_encoder": {"weights": None}}
    with pytest.raises(FileNotFoundError, match="bert-base-uncased is not in the local Hugging Face cache"):
        gym.make("DUS-Twitter2015", dataset_kwargs=data_kwargs)
