"""Batched RandomResizedCrop + flip (mmrl_env.data.augment) against torchvision's per-clip version:
shapes, seeding, shared crop across frames, flip rate, the box distribution, and pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torchvision.transforms import v2

from mmrl_env.data.augment import crop_rois, random_resized_crop_flip, resized_crop, sample_boxes
from mmrl_env.data.cached_split import IMAGENET_MEAN, IMAGENET_STD, CachedSplit, FramesView

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
BACKENDS = ["batched", "per_sample"]  # "auto" picks per_sample on the CPU, batched on an accelerator
N_BOXES = 3000


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_shapes_dtype_and_seeding(device, backend):
    clips = torch.randint(0, 256, (5, 3, 3, 40, 48), dtype=torch.uint8, device=device)
    before = torch.get_rng_state()
    a = random_resized_crop_flip(clips, 32, gen(1), backend=backend)
    assert a.shape == (5, 3, 3, 32, 32) and a.dtype == torch.float32 and a.device == clips.device
    assert torch.equal(a, random_resized_crop_flip(clips, 32, gen(1), backend=backend))  # same seed, same batch
    assert not torch.equal(a, random_resized_crop_flip(clips, 32, gen(2), backend=backend))
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is never drawn from
    images = clips[:, 0]
    assert random_resized_crop_flip(images, 24, gen(1), backend=backend).shape == (5, 3, 24, 24)
    assert 0 <= a.min() and a.max() <= 255  # bilinear: values stay in the input's range
    with pytest.raises(ValueError, match="unknown augmentation backend 'fast'"):
        random_resized_crop_flip(clips, 32, gen(1), backend="fast")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_one_crop_per_clip_shared_by_its_frames(device, backend):
    frame = torch.randint(0, 256, (6, 1, 3, 40, 40), dtype=torch.uint8, device=device)
    out = random_resized_crop_flip(frame.expand(6, 4, 3, 40, 40), 24, gen(0), backend=backend)
    for f in range(1, 4):
        assert torch.equal(out[:, f], out[:, 0])
    assert not torch.equal(out[0], out[1])  # but clips get their own boxes


@pytest.mark.parametrize("backend", BACKENDS)
def test_flip_probability_and_no_flip(backend):
    n = 2000
    x = torch.arange(n * 8 * 8, dtype=torch.float32).view(n, 1, 8, 8)  # asymmetric content
    full = {"scale": (1.0, 1.0), "ratio": (1.0, 1.0), "backend": backend}  # whole image: input or its mirror
    out = random_resized_crop_flip(x, 8, gen(5), **full)
    same = (out - x).abs().amax((1, 2, 3)) < 1e-3
    mirrored = (out - x.flip(-1)).abs().amax((1, 2, 3)) < 1e-3
    assert torch.all(same ^ mirrored)
    assert stats.binomtest(int(mirrored.sum()), n, 0.5).pvalue > 1e-3
    assert stats.binomtest(int(mirrored.sum()), n, 0.4).pvalue < 1e-3  # the check can fail
    unflipped = random_resized_crop_flip(x, 8, gen(5), flip_p=0.0, **full)
    assert torch.allclose(unflipped, x, atol=1e-3)


def test_backends_agree():
    """The same boxes and flips both ways; pixels differ only by uint8 rounding inside the crop
    and at its border (roi_align reads the image's neighbours, torchvision repeats the edge)."""
    clips = smooth_image(48).expand(8, 3, 3, 48, 48).contiguous()
    a = random_resized_crop_flip(clips, 48, gen(9), backend="batched")
    b = random_resized_crop_flip(clips, 48, gen(9), backend="per_sample")
    diff = (a - b).abs()
    assert diff.mean() < 0.5 and diff.max() < 4  # other boxes: a mean difference of ~35 levels


def torchvision_boxes(n: int, height: int, width: int, scale, ratio, seed: int) -> np.ndarray:
    """``n`` boxes from torchvision's own per-clip sampler (it draws from the global RNG)."""
    crop = v2.RandomResizedCrop(8, scale=scale, ratio=ratio)
    image = torch.zeros(1, height, width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        p = [crop.make_params([image]) for _ in range(n)]
    return np.array([[d["top"], d["left"], d["height"], d["width"]] for d in p], dtype=np.float64)


def box_features(b: np.ndarray, height: int, width: int) -> dict[str, np.ndarray]:
    top, left, h, w = b.T
    return {"area": h * w / (height * width), "log_aspect": np.log(w / h),
            "centre_x": (left + w / 2) / width, "centre_y": (top + h / 2) / height}


@pytest.mark.parametrize(("height", "width", "scale", "ratio"), [
    (48, 64, (0.08, 1.0), (3 / 4, 4 / 3)),  # the default recipe, a landscape image
    (20, 100, (0.2, 0.4), (3 / 4, 4 / 3)),  # most draws fail: the central-crop fallback is frequent
    (64, 64, (0.6, 1.0), (3 / 4, 4 / 3)),  # NVGesture's area range
])
def test_box_distribution_matches_torchvision(height, width, scale, ratio):
    ours = sample_boxes(N_BOXES, height, width, gen(11), scale, ratio).numpy().astype(np.float64)
    ref = torchvision_boxes(N_BOXES, height, width, scale, ratio, seed=11)
    assert (ours[:, 2] >= 1).all() and (ours[:, 2] + ours[:, 0] <= height).all()
    assert (ours[:, 3] >= 1).all() and (ours[:, 3] + ours[:, 1] <= width).all()
    f_ours, f_ref = box_features(ours, height, width), box_features(ref, height, width)
    for key in f_ours:
        assert stats.ks_2samp(f_ours[key], f_ref[key]).pvalue > 1e-3, key
    # the fallback (central crop, aspect clamped) as often as torchvision's, and the same box
    fallback = central_crop(height, width, ratio)
    n_ours, n_ref = (ours == fallback).all(1).sum(), (ref == fallback).all(1).sum()
    assert abs(n_ours - n_ref) <= 4 * math.sqrt(max(n_ref, 1)) + 5


def central_crop(height: int, width: int, ratio) -> np.ndarray:
    """torchvision's fallback box, written out: the aspect clamped into ``ratio``, centred."""
    h, w = height, width
    if width / height < ratio[0]:
        h = round(width / ratio[0])
    elif width / height > ratio[1]:
        w = round(height * ratio[1])
    return np.array([(height - h) // 2, (width - w) // 2, h, w], dtype=np.float64)


def test_the_distribution_check_can_fail():
    """A different area range is rejected by the same KS check (it has power at this N)."""
    ours = sample_boxes(N_BOXES, 48, 64, gen(11), (0.3, 1.0)).numpy().astype(np.float64)
    ref = torchvision_boxes(N_BOXES, 48, 64, (0.08, 1.0), (3 / 4, 4 / 3), seed=11)
    assert stats.ks_2samp(box_features(ours, 48, 64)["area"], box_features(ref, 48, 64)["area"]).pvalue < 1e-3


def smooth_image(size: int) -> torch.Tensor:
    """uint8 (3, size, size) with smooth content (gradients + waves), as photos mostly are."""
    y, x = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    img = torch.stack([x / size * 200, 120 + 80 * torch.sin(x / 9) * torch.cos(y / 13), y / size * 220])
    return img.round().clamp(0, 255).to(torch.uint8)


def test_pixels_match_torchvision_on_upscale():
    """A fixed box crop resized up (every crop at the default sizes): the same sampling positions
    as torchvision's bilinear resize, so away from the crop's border the float results agree; its
    uint8 path (what the per-clip version ran) differs by its fixed-point rounding, < 1 level."""
    img, (top, left, h, w), size = smooth_image(64), (7, 11, 30, 41), 64
    ours = resized_crop(img[None].float(), crop_rois(torch.tensor([[top, left, h, w]])), size)[0]
    margin = math.ceil(size / min(h, w))  # output pixels that sample beyond the crop's edge
    for src, inner_tol in ((img.float(), 1e-3), (img, 1.0)):
        ref = v2.functional.resized_crop(src, top, left, h, w, [size, size], antialias=True).float()
        diff = (ours - ref).abs()
        assert diff[:, margin:-margin, margin:-margin].max() < inner_tol
        assert diff.max() < 8  # the border: the image's neighbours vs the crop's repeated edge pixels


def test_downscale_is_box_averaged():
    """Exact 2× downscale: each output pixel is the mean of its 2×2 source block (antialiased,
    with a box where torchvision uses a triangle filter)."""
    img = torch.randint(0, 256, (1, 3, 32, 32)).float()
    ours = resized_crop(img, crop_rois(torch.tensor([[0, 0, 32, 32]])), 16)
    assert torch.allclose(ours, torch.nn.functional.avg_pool2d(img, 2), atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_frames_view_train_and_eval(device):
    """The split's train path: uint8 → cropped, flipped, ImageNet-normalised float32 on the device."""
    clips = smooth_image(40).expand(4, 3, 3, 40, 40).contiguous()
    split = CachedSplit([clips.numpy()], [FramesView(3, 3, 32)], np.arange(4), np.zeros(4), device, seed=3)
    idx = torch.arange(4, device=device)
    x = split.gather(0, idx, train=True)
    assert x.shape == (4, 3, 3, 32, 32) and x.device.type == device
    lo = (0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    hi = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    per_channel = x.transpose(0, 2).flatten(1).cpu()  # (C, ...)
    assert (per_channel.amin(1) >= lo - 1e-5).all() and (per_channel.amax(1) <= hi + 1e-5).all()
    again = CachedSplit([clips.numpy()], [FramesView(3, 3, 32)], np.arange(4), np.zeros(4), device, seed=3)
    assert torch.equal(x, again.gather(0, idx, train=True))  # the split's seed decides the crops
    assert not torch.equal(x, split.gather(0, idx, train=True))  # and its generator moves on
    ev = split.gather(0, idx)
    ref = v2.functional.normalize(v2.functional.to_dtype(  # torchvision's eval recipe, on the same device
        v2.functional.resize(clips.to(device).flatten(0, 1), [32, 32], antialias=True), torch.float32, scale=True),
        list(IMAGENET_MEAN), list(IMAGENET_STD)).unflatten(0, (4, 3))
    torch.testing.assert_close(ev, ref, atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_boxes_on_cpu_and_cuda():
    """The boxes come from the CPU generator, so a seed crops alike on both devices."""
    clips = torch.randint(0, 256, (8, 3, 3, 40, 40), dtype=torch.uint8)
    cpu = random_resized_crop_flip(clips, 32, gen(4), backend="batched")
    cuda = random_resized_crop_flip(clips.cuda(), 32, gen(4))  # auto: batched on CUDA
    torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-2, rtol=0)
