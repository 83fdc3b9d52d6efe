"""Tests of the audio adapter: filterbank, resampling, WAV reading and log-mel shapes."""

import csv
import math
import struct
import warnings

import numpy as np
import pytest
import soundfile
import torch
from scipy.io import wavfile

from polymodal.cli import main
from polymodal.errors import DataError
from polymodal.modalities.audio import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    AudioAdapter,
    AudioConfig,
    log_mel,
    mel_filterbank,
    read_wav,
    resample,
)


def wav_bytes(rate: int, samples: np.ndarray, frames: int | None = None, extra_chunk: bytes = b"") -> bytes:
    """A mono PCM-16 or float-32 WAV whose data chunk header declares ``frames`` (default: the samples given)."""
    fmt_tag, bits = (3, 32) if samples.dtype == np.float32 else (1, 16)
    block = bits // 8
    declared = len(samples) if frames is None else frames
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, fmt_tag, 1, rate, rate * block, block, bits)
    data = struct.pack("<4sI", b"data", declared * block) + samples.tobytes()
    body = b"WAVE" + fmt + extra_chunk + data
    return struct.pack("<4sI", b"RIFF", len(body)) + body


TONE = (np.sin(np.arange(800) * 0.3) * 8000).astype(np.int16)


def test_filterbank_matches_hand_computed_triangle():
    # One filter over 0-4000 Hz, bins at 0, 1000, 2000, 3000, 4000 Hz. Its centre is the mel midpoint:
    # mel(4000) = 2595 log10(1 + 4000/700) = 2146.06; half is 1073.03 mel = 700 (10^(1073.03/2595) - 1) = 1113.9 Hz.
    centre = 700 * (10 ** (2595 * math.log10(1 + 4000 / 700) / 2 / 2595) - 1)
    assert centre == pytest.approx(1113.9, abs=0.1)
    expected = torch.tensor([[0.0], [1000 / centre], [2000 / (4000 - centre)], [1000 / (4000 - centre)], [0.0]])
    got = mel_filterbank(n_freqs=5, n_mels=1, sample_rate=8000, f_min=0.0, f_max=4000.0)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_filterbank_properties():
    bank = mel_filterbank(n_freqs=129, n_mels=32, sample_rate=8000, f_min=0.0, f_max=4000.0)
    assert bank.shape == (129, 32)
    assert (bank >= 0).all() and (bank <= 1).all()
    assert (bank.max(dim=0).values > 0.3).all()  # every filter covers at least one bin
    peaks = bank.argmax(dim=0)
    assert (peaks[1:] >= peaks[:-1]).all()  # centres increase with the filter index


def test_filterbank_reaches_one_on_a_centre_bin():
    # Edges at 0, mel-mid, 4000 Hz; a bin placed exactly at the centre must weigh 1.
    centre = 700 * (10 ** (2595 * math.log10(1 + 4000 / 700) / 2 / 2595) - 1)
    n_freqs = 4001  # bins every 1 Hz; the nearest bin is within 0.5 Hz of the centre
    bank = mel_filterbank(n_freqs, 1, 8000, 0.0, 4000.0)
    assert bank[round(centre), 0] == pytest.approx(1.0, abs=1e-3)


def test_resample_keeps_duration_and_frequency():
    sr = 16000
    t = np.arange(sr // 4) / sr
    wave = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = resample(wave, sr, 8000)
    assert out.dtype == np.float32 and out.shape == (len(wave) // 2,)
    spectrum = np.abs(np.fft.rfft(out))
    freqs = np.fft.rfftfreq(len(out), d=1 / 8000)
    assert freqs[spectrum.argmax()] == pytest.approx(1000, abs=8000 / len(out))


def test_read_wav_converts_stereo_44k_int16(tmp_path):
    path = tmp_path / "stereo.wav"
    left = np.full(441, 16384, dtype=np.int16)
    wavfile.write(path, 44100, np.stack([left, -left // 2], axis=1))
    wave, sr = read_wav(path)
    assert sr == 44100 and wave.dtype == np.float32 and wave.shape == (441,)
    np.testing.assert_allclose(wave, (0.5 - 0.25) / 2, atol=1e-6)


def test_read_wav_float32_and_24_bit(tmp_path):
    float_path = tmp_path / "float.wav"
    wavfile.write(float_path, 8000, np.array([0.0, 0.5, -2.0], dtype=np.float32))
    wave, _ = read_wav(float_path)
    np.testing.assert_allclose(wave, [0.0, 0.5, -1.0])  # clipped to [-1, 1]
    pcm24 = tmp_path / "pcm24.wav"
    soundfile.write(pcm24, np.array([0.25, -0.5]), 8000, subtype="PCM_24")
    wave, sr = read_wav(pcm24)
    assert sr == 8000
    np.testing.assert_allclose(wave, [0.25, -0.5], atol=1e-6)


def test_read_wav_uint8(tmp_path):
    path = tmp_path / "u8.wav"
    wavfile.write(path, 8000, np.array([128, 192, 0], dtype=np.uint8))
    np.testing.assert_allclose(read_wav(path)[0], [0.0, 0.5, -1.0])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not a wav file at all", "not a readable WAV file"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00", "not a readable WAV file"),
    ],
)
def test_read_wav_corrupt(tmp_path, content, problem):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_wav(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {problem}") and "\n" not in message
    assert info.value.__suppress_context__


def test_read_wav_empty_missing_and_nan(tmp_path):
    empty = tmp_path / "empty.wav"
    wavfile.write(empty, 8000, np.zeros(0, dtype=np.int16))
    with pytest.raises(DataError, match="empty.wav: contains no samples"):
        read_wav(empty)
    with pytest.raises(DataError, match="missing.wav: file not found"):
        read_wav(tmp_path / "missing.wav")
    nan = tmp_path / "nan.wav"
    wavfile.write(nan, 8000, np.array([0.0, np.nan], dtype=np.float32))
    with pytest.raises(DataError, match="nan.wav: contains NaN or inf samples"):
        read_wav(nan)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (wav_bytes(8000, TONE[:100], frames=900), "truncated WAV (the header promises 900 frames, the file holds 100)"),
        (wav_bytes(8000, TONE)[:-1], "truncated WAV (the header promises 800 frames, the file holds 799)"),
        (wav_bytes(0, TONE), f"sample rate 0 Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"),
        (wav_bytes(MIN_SAMPLE_RATE - 1, TONE), f"sample rate {MIN_SAMPLE_RATE - 1} Hz is outside"),
        (wav_bytes(MAX_SAMPLE_RATE + 1, TONE), f"sample rate {MAX_SAMPLE_RATE + 1} Hz is outside"),
        (wav_bytes(8000, TONE[:0]), "contains no samples"),
        (wav_bytes(8000, np.array([0.0, np.inf, 0.5], dtype=np.float32)), "contains NaN or inf samples"),
    ],
    ids=["truncated", "truncated-odd", "rate-zero", "rate-low", "rate-high", "no-frames", "inf"],
)
def test_from_file_rejects_bad_headers_in_one_line(tmp_path, content, problem):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's WavFileWarning must become the error, not leak
        with pytest.raises(DataError) as info:
            AudioAdapter(AudioConfig()).from_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


def test_odd_but_complete_wavs_load_without_warnings(tmp_path):
    tone = wav_bytes(8000, TONE)
    unknown_chunk = struct.pack("<4sI", b"bext", 4) + b"meta"  # scipy warns "Chunk (non-data) not understood"
    files = {
        "chunk.wav": wav_bytes(8000, TONE, extra_chunk=unknown_chunk),
        # RIFF size promises more than the file holds, but the data chunk is complete: scipy warns "Reached EOF".
        "riff_short.wav": tone[:4] + struct.pack("<I", 10_000) + tone[8:],
        "streamed.wav": tone[:40] + struct.pack("<I", 0xFFFFFFFF) + tone[44:],  # a pipe writer's unknown data size
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            wave, rate = read_wav(tmp_path / name)
        assert rate == 8000 and wave.shape == TONE.shape, name
        assert [str(w.message) for w in caught] == [], name


def test_from_wave_rejects_a_bad_rate():
    with pytest.raises(DataError, match="waveform: sample rate 0 Hz is outside"):
        AudioAdapter(AudioConfig()).from_wave(TONE.astype(np.float32), 0)


def test_cli_train_stops_on_a_truncated_wav(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for split, rows in (("train", 20), ("test", 6)):
        with (tmp_path / f"{split}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["audio", "label"])
            for r in range(rows):
                (tmp_path / f"{split}_{r}.wav").write_bytes(wav_bytes(8000, np.roll(TONE, r * 7)))
                writer.writerow([f"{split}_{r}.wav", r % 2])
    (tmp_path / "train_3.wav").write_bytes(wav_bytes(8000, TONE[:100], frames=len(TONE)))
    argv = ["train", "manifest-joint", "data.train=train.csv", "data.test=test.csv", "data.target=label"]
    overrides = ["model.encoders={audio: {name: spec_cnn, out_dim: 8}}", "trainer.epochs=1", "trainer.progress=false"]
    code = main([*argv, *overrides, "--out", "RUN"])
    err = capsys.readouterr().err
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"polymodal: error: {tmp_path / 'train.csv'}: row 4, column 'audio': ")
    assert f"{tmp_path / 'train_3.wav'}: truncated WAV (the header promises 800 frames, the file holds 100)" in line
    assert not (tmp_path / "RUN").exists()


def test_log_mel_shape_and_silence_floor():
    cfg = AudioConfig(n_fft=16, hop_length=8, n_mels=4)
    mel = log_mel(torch.zeros(40), cfg)
    assert mel.shape == (4, 1 + 40 // 8)
    torch.testing.assert_close(mel, torch.full_like(mel, math.log(1e-6)))


def test_log_mel_puts_a_tone_in_the_right_band():
    cfg = AudioConfig(n_fft=64, hop_length=32, n_mels=8)
    t = torch.arange(800) / 8000
    mel = log_mel(torch.sin(2 * math.pi * 3000 * t), cfg)
    assert mel.mean(dim=1).argmax() >= 6  # 3 kHz lands in the top bands of 0-4 kHz


def test_adapter_fit_frames_crops_centre_and_pads_with_floor():
    adapter = AudioAdapter(AudioConfig(n_mels=2, max_frames=4))
    mel = torch.arange(12.0).reshape(2, 6)
    torch.testing.assert_close(adapter.fit_frames(mel), mel[None, :, 1:5])
    short = adapter.fit_frames(mel[:, :2])
    assert short.shape == (1, 2, 4)
    torch.testing.assert_close(short[0, :, 2:], torch.full((2, 2), math.log(1e-6)))


def test_adapter_from_file_resamples(tmp_path):
    path = tmp_path / "tone.wav"
    rng = np.random.default_rng(0)
    wavfile.write(path, 16000, (rng.standard_normal(1600) * 3000).astype(np.int16))
    cfg = AudioConfig(n_fft=32, hop_length=16, n_mels=4, max_frames=8)
    out = AudioAdapter(cfg).from_file(path)
    assert out.shape == (1, 4, 8) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_config_rejects_unknown_keys_and_bad_band():
    with pytest.raises(ValueError, match="n_mel"):
        AudioConfig(n_mel=16)
    with pytest.raises(ValueError, match="f_max"):
        AudioConfig(f_max=5000.0)
