"""Audio → the reference log-magnitude spectrogram (data README, "What a clip becomes"), shared by audio-video datasets.

The recipe follows the reference loaders (resample to 22,050 Hz, tile to a fixed length,
clip to ±1, STFT n_fft 512 hop 353, ``log(|S| + 1e-7)``) so that published numbers stay
comparable; it is computed with ``torch.stft`` (Hann window, centred, as librosa does).
"""

from __future__ import annotations

import math
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mmrl_env.extras import require


@dataclass(frozen=True)
class AudioConfig:
    """Spectrogram parameters; stored in the cache manifest so a cache knows its recipe."""

    sample_rate: int = 22_050
    seconds: float = 3.0
    n_fft: int = 512
    hop: int = 353

    @property
    def num_samples(self) -> int:
        return int(round(self.sample_rate * self.seconds))

    @property
    def shape(self) -> tuple[int, int]:
        """(frequency bins, time frames) of the spectrogram: 257×188 for CREMA-D."""
        return self.n_fft // 2 + 1, self.num_samples // self.hop + 1

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def wav_shortfall(path: Path) -> str | None:
    """What is missing from a RIFF/WAVE file cut short (a broken copy or download), else None.
    libsndfile reads such a file without a word, as far as its bytes go; its header still says
    how many bytes the data chunk had. Streamed files (size 0 or 0xFFFFFFFF) and RF64 are not judged."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # not plain RIFF/WAVE: soundfile judges it
        pos, align = 12, 0
        while pos + 8 <= size:
            f.seek(pos)
            chunk, n = struct.unpack("<4sI", f.read(8))
            if chunk == b"fmt " and n >= 14:
                align = struct.unpack("<12xH", f.read(14))[0]  # block align: bytes per sample frame
            if chunk == b"data":
                have = size - pos - 8
                if n in (0, 0xFFFFFFFF) or have >= n:
                    return None
                if align:
                    return f"truncated: it holds {have // align} of the {n // align} samples its header declares"
                return f"truncated: it holds {have} of the {n} data bytes its header declares"
            pos += 8 + n + (n & 1)
    return None


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 waveform at ``sample_rate``: soundfile for audio files, PyAV for videos.
    A file cut short is refused, not read as the part that is left (:func:`wav_shortfall`;
    for FLAC/OGG: fewer samples than the header declares)."""
    if path.suffix.lower() in {".wav", ".flac", ".ogg"}:
        sf = require("soundfile", "reading wav files")
        problem = wav_shortfall(path) if path.suffix.lower() == ".wav" else None
        if problem:
            raise ValueError(problem)
        with sf.SoundFile(str(path)) as f:
            declared = f.frames
            wave = f.read(dtype="float32", always_2d=True)
            sr = f.samplerate
        if 0 < wave.shape[0] < declared:
            raise ValueError(f"truncated: it holds {wave.shape[0]} of the {declared} samples its header declares")
        wave = wave.mean(axis=1)
    else:
        wave, sr = _decode_audio_stream(path, sample_rate)
    if wave.size == 0:
        raise ValueError("no audio samples")
    if sr != sample_rate:
        g = math.gcd(int(sr), sample_rate)
        from scipy.signal import resample_poly

        wave = resample_poly(wave, sample_rate // g, int(sr) // g).astype(np.float32)
    return wave


def _decode_audio_stream(path: Path, sample_rate: int) -> tuple[np.ndarray, int]:
    """Audio track of a container (e.g. an .mp4 clip) as mono float32, resampled by PyAV."""
    av = require("av", "decoding audio from video files")

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("the file has no audio stream")
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=sample_rate)
        chunks = [f.to_ndarray()[0] for frame in container.decode(audio=0) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), sample_rate


def spectrogram(wave: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """Tile the waveform to ``cfg.seconds`` (short clips repeat), clip to ±1, log |STFT|.

    The reference tiles exactly three times and truncates; we repeat as often as needed so
    clips under one second still fill the window.
    """
    import torch  # here, so that importing the data recipes (prepare --help) does not load torch

    n = cfg.num_samples
    reps = math.ceil(n / wave.size)
    x = torch.from_numpy(np.tile(wave, reps)[:n]).clamp_(-1.0, 1.0)
    spec = torch.stft(x, n_fft=cfg.n_fft, hop_length=cfg.hop, window=torch.hann_window(cfg.n_fft),
                      center=True, return_complex=True)
    return torch.log(spec.abs() + 1e-7).numpy()
