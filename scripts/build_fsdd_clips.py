"""Builds the embedded "fsdd_clips" asset: 600 FSDD recordings as 8-bit mu-law waveforms (embedded AV-MNIST audio).

Run from the repository root with your copy of FSDD (see docs/data.md)::

    python scripts/build_fsdd_clips.py --fsdd path/to/free-spoken-digit-dataset

See src/polymodal/data/assets/FSDD_CLIPS.md for the layout and the licence.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from polymodal.data.avmnist import MU_LAW, SAMPLE_RATE, mu_law_decode, mu_law_encode

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 2 * 1024 * 1024
TAKES = range(0, 10)  # of each digit and speaker: 6 speakers x 10 digits x 10 takes = 600 recordings
NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
SOURCE = {
    "name": "Free Spoken Digit Dataset (FSDD), Zohar Jackson et al.",
    "repository": "github.com/Jakobovski/free-spoken-digit-dataset",
    "commit": "26eb9aaf76e81b692f806f9140c2d2777410d7a1",
    "licence": "CC BY-SA 4.0",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", type=Path, required=True, help="FSDD folder (with recordings/)")
    parser.add_argument("--out", type=Path, default=ROOT / "src/polymodal/data/assets/fsdd_clips.npz")
    args = parser.parse_args()
    folder = args.fsdd / "recordings" if (args.fsdd / "recordings").is_dir() else args.fsdd
    files = sorted(p for p in folder.glob("*.wav") if (m := NAME.match(p.name)) and int(m[3]) in TAKES)
    if len(files) != 60 * len(TAKES):
        sys.exit(
            f"{folder}: expected {60 * len(TAKES)} recordings of takes {TAKES.start}-{TAKES.stop - 1}, got {len(files)}"
        )
    codes, errors = [], []
    for path in files:
        rate, wave = wavfile.read(path)
        if rate != SAMPLE_RATE or wave.ndim != 1 or wave.dtype != np.int16:
            sys.exit(f"{path}: expected 8 kHz mono 16-bit PCM as in FSDD, got {rate} Hz {wave.dtype}")
        unit = wave.astype(np.float64) / 32768.0
        codes.append(mu_law_encode(unit))
        errors.append(np.mean((mu_law_decode(codes[-1]) - unit) ** 2) / np.mean(unit**2))
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in codes])]).astype(np.int64)
    snr = -10 * np.log10(np.mean(errors))
    meta = {
        "name": "fsdd_clips",
        "encoding": f"8-bit mu-law, mu = {MU_LAW}: wave = sign(y) * ((1 + mu) ** |y| - 1) / mu, y = code / 127.5 - 1",
        "sample_rate": SAMPLE_RATE,
        "takes": [TAKES.start, TAKES.stop - 1],
        "quantisation_snr_db": round(float(snr), 1),
        "source": SOURCE,
        "licence": "CC BY-SA 4.0 (derived from FSDD, CC BY-SA 4.0)",
        "build_command": "python scripts/build_fsdd_clips.py --fsdd FSDD",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        wave=np.concatenate(codes),
        offsets=offsets,
        recordings=np.array([p.stem for p in files], dtype=str),
        meta=np.array(json.dumps(meta)),
    )
    size = args.out.stat().st_size
    if size > MAX_BYTES:
        args.out.unlink()
        sys.exit(f"{args.out}: {size / 1e6:.2f} MB exceeds the {MAX_BYTES / 1e6:.2f} MB limit; file removed")
    print(
        f"wrote {args.out} ({size / 1e6:.2f} MB): {len(files)} recordings, {offsets[-1]} samples, "
        f"mu-law quantisation SNR {snr:.1f} dB"
    )


if __name__ == "__main__":
    main()
