"""Builds the embedded "avdigits" dataset: MNIST images, FSDD log-mel audio and noisy multilingual text per digit.

Run from the repository root with your copies of MNIST and FSDD (docs/data.md); the output defaults to the packaged
asset::

    python scripts/build_avdigits.py --mnist path/to/mnist.npz --fsdd path/to/free-spoken-digit-dataset

See src/polymodal/data/assets/AVDIGITS.md for the layout, the noise model and the licences.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from polymodal.modalities.audio import LOG_FLOOR, AudioConfig, log_mel, read_wav, resample

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 8 * 1024 * 1024
LANGUAGES = ("en", "fr", "de", "es", "it", "pt", "nl")
TEMPLATES = {
    "en": ("{w}", "the number {w}", "digit {w}", "it's a {w}", "i said {w}"),
    "fr": ("{w}", "le chiffre {w}", "c'est {w}", "numéro {w}"),
    "de": ("{w}", "die Zahl {w}", "das ist {w}", "Ziffer {w}"),
    "es": ("{w}", "el número {w}", "es el {w}", "dígito {w}"),
    "it": ("{w}", "il numero {w}", "è il {w}", "cifra {w}"),
    "pt": ("{w}", "o número {w}", "é o {w}", "dígito {w}"),
    "nl": ("{w}", "het getal {w}", "dat is {w}", "cijfer {w}"),
}
# Digits an ASR or OCR system plausibly mistakes for each digit (shape: 1/7, 3/8, 4/9, 0/6; sound: five/nine).
CONFUSABLE = {0: (6, 8, 9), 1: (7, 4), 2: (3, 7), 3: (8, 5, 2), 4: (9, 1), 5: (9, 6, 3), 6: (0, 5, 8), 7: (1, 9, 2),
              8: (3, 0, 6), 9: (4, 5, 7)}  # fmt: skip
MISTRANSCRIPTION_RATE = 0.12
TYPO_CHAR_RATE = 0.03
TYPO_ALPHABET = "abcdefghijklmnopqrstuvwxyzéèüöäñ"
SPLITS = {
    # name: (count, MNIST array, MNIST index range, FSDD takes)
    "train": (12000, "train", (0, 55000), range(10, 50)),
    "val": (2000, "train", (55000, 60000), range(5, 10)),
    "test": (3000, "test", (0, 10000), range(0, 5)),
}
SOURCES = {
    "fsdd": {
        "name": "Free Spoken Digit Dataset (FSDD), Zohar Jackson et al.",
        "repository": "github.com/Jakobovski/free-spoken-digit-dataset",
        "commit": "26eb9aaf76e81b692f806f9140c2d2777410d7a1",
        "licence": "CC BY-SA 4.0",
    },
    "mnist": {
        "name": "MNIST, Yann LeCun and Corinna Cortes",
        "repository": "github.com/rasbt/mnist-pngs (pixels), cross-checked against the official IDX files",
        "commit": "d26bd33bf1e454dd15bd4fe8b8ba64c76308f91c",
        "licence": "CC BY-SA 3.0",
    },
}


def number_words() -> dict[str, list[str]]:
    from num2words import num2words

    return {lang: [num2words(d, lang=lang) for d in range(10)] for lang in LANGUAGES}


def add_typos(text: str, rng: np.random.Generator) -> str:
    """Applies a drop, swap, replace or insert at each character with probability TYPO_CHAR_RATE."""
    chars = list(text)
    out: list[str] = []
    i = 0
    while i < len(chars):
        if rng.random() >= TYPO_CHAR_RATE:
            out.append(chars[i])
            i += 1
            continue
        op = rng.integers(4)
        if op == 0:  # drop
            pass
        elif op == 1 and i + 1 < len(chars):  # swap with the next character
            out.extend([chars[i + 1], chars[i]])
            i += 1
        elif op == 2:  # replace
            out.append(TYPO_ALPHABET[rng.integers(len(TYPO_ALPHABET))])
        else:  # insert before
            out.extend([TYPO_ALPHABET[rng.integers(len(TYPO_ALPHABET))], chars[i]])
        i += 1
    return "".join(out)


def make_texts(
    labels: np.ndarray, words: dict[str, list[str]], rng: np.random.Generator
) -> tuple[list[str], np.ndarray, float]:
    """Returns one noisy phrase per label, the digit each phrase actually names, and the fraction with a typo."""
    texts, named, typos = [], np.empty(len(labels), dtype=np.uint8), 0
    for i, label in enumerate(labels):
        digit = int(label)
        if rng.random() < MISTRANSCRIPTION_RATE:
            digit = int(rng.choice(CONFUSABLE[digit]))
        lang = LANGUAGES[rng.integers(len(LANGUAGES))]
        template = TEMPLATES[lang][rng.integers(len(TEMPLATES[lang]))]
        clean = template.format(w=words[lang][digit])
        texts.append(add_typos(clean, rng))
        typos += texts[-1] != clean
        named[i] = digit
    return texts, named, typos / len(labels)


def text_only_accuracy(texts: list[str], labels: np.ndarray, words: dict[str, list[str]]) -> float:
    """Accuracy of a rule-based reader that fuzzy-matches the last word against every language's number words."""
    vocab = {w: d for lang_words in words.values() for d, w in enumerate(lang_words)}
    hits = 0
    for text, label in zip(texts, labels, strict=True):
        last = text.lower().split()[-1] if text.split() else ""
        match = difflib.get_close_matches(last, vocab, n=1, cutoff=0.0)
        hits += bool(match) and vocab[match[0]] == int(label)
    return hits / len(texts)


def build_mel_bank(fsdd: Path, cfg: AudioConfig) -> tuple[list[str], list[np.ndarray]]:
    files = sorted((fsdd / "recordings").glob("*.wav"))
    if len(files) != 3000:
        sys.exit(f"{fsdd}: expected 3000 recordings, found {len(files)}")
    names, mels = [], []
    for path in files:
        wave, sample_rate = read_wav(path)
        # Full-length spectrograms are stored; AVDigits crops or pads them to max_frames at load time.
        mel = log_mel(torch.from_numpy(resample(wave, sample_rate, cfg.sample_rate)), cfg)  # (n_mels, frames)
        names.append(path.stem)
        mels.append(mel.T.numpy())  # (frames, n_mels)
    return names, mels


def quantise(frames: np.ndarray) -> tuple[np.ndarray, float, float]:
    lo, hi = float(np.log(LOG_FLOOR)), float(frames.max())
    lo = max(lo, float(frames.min()))
    q = np.round((frames - lo) / (hi - lo) * 255.0).clip(0, 255).astype(np.uint8)
    return q, lo, hi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, required=True, help="Keras-style mnist.npz")
    parser.add_argument("--fsdd", type=Path, required=True, help="FSDD folder (with recordings/)")
    parser.add_argument("--out", type=Path, default=ROOT / "src/polymodal/data/assets/avdigits.npz")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    cfg = AudioConfig()
    words = number_words()

    with np.load(args.mnist, allow_pickle=False) as mnist:
        images = {"train": mnist["x_train"], "test": mnist["x_test"]}
        image_labels = {"train": mnist["y_train"], "test": mnist["y_test"]}
    mnist_sha = hashlib.sha256(args.mnist.read_bytes()).hexdigest()

    names, mels = build_mel_bank(args.fsdd, cfg)
    digits = np.array([int(n.split("_")[0]) for n in names])
    takes = np.array([int(n.split("_")[2]) for n in names])
    offsets = np.concatenate([[0], np.cumsum([m.shape[0] for m in mels])]).astype(np.int64)
    mel_q, lo, hi = quantise(np.concatenate(mels))

    arrays: dict[str, np.ndarray] = {}
    stats: dict[str, dict] = {}
    for split, (count, source, (start, stop), split_takes) in SPLITS.items():
        pick = np.sort(rng.choice(np.arange(start, stop), size=count, replace=False))
        labels = image_labels[source][pick].astype(np.uint8)
        in_split = np.isin(takes, list(split_takes))
        audio = np.array([rng.choice(np.flatnonzero(in_split & (digits == y))) for y in labels], dtype=np.int32)
        texts, named, typo_fraction = make_texts(labels, words, rng)
        arrays[f"{split}_image"] = images[source][pick]
        arrays[f"{split}_label"] = labels
        arrays[f"{split}_audio"] = audio
        arrays[f"{split}_text"] = np.array(texts, dtype=str)
        arrays[f"{split}_text_label"] = named
        stats[split] = {
            "count": count,
            "label_counts": np.bincount(labels, minlength=10).tolist(),
            "mistranscribed": float(np.mean(named != labels)),
            "with_typo": typo_fraction,
            "text_only_accuracy_rule_based": text_only_accuracy(texts, labels, words),
        }

    step = (hi - lo) / 255.0
    meta = {
        "name": "avdigits",
        "audio": {**cfg.model_dump(exclude={"max_frames"}), "f_max": cfg.upper_frequency, "log_floor": LOG_FLOOR},
        "mel_quantisation": {
            "lo": lo,
            "hi": hi,
            "levels": 256,
            "step_nats": step,
            "step_db": 10 * np.log10(np.e) * step,
            "rule": "value = lo + q / 255 * (hi - lo)",
        },
        "text": {
            "languages": list(LANGUAGES),
            "templates": {k: list(v) for k, v in TEMPLATES.items()},
            "mistranscription_rate": MISTRANSCRIPTION_RATE,
            "typo_char_rate": TYPO_CHAR_RATE,
            "confusable": {str(k): list(v) for k, v in CONFUSABLE.items()},
        },
        "splits": {
            name: {"mnist": f"{source}[{start}:{stop}]", "fsdd_takes": [split_takes.start, split_takes.stop - 1]}
            for name, (_, source, (start, stop), split_takes) in SPLITS.items()
        },
        "stats": stats,
        "seed": args.seed,
        "sources": {**SOURCES, "mnist_npz_sha256": mnist_sha},
        "licence": "CC BY-SA 4.0 (derived from FSDD, CC BY-SA 4.0, and MNIST, CC BY-SA 3.0)",
        "build_command": f"python scripts/build_avdigits.py --mnist MNIST --fsdd FSDD --seed {args.seed}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        **arrays,
        mel=mel_q,
        mel_offsets=offsets,
        mel_range=np.array([lo, hi], dtype=np.float32),
        recordings=np.array(names, dtype=str),
        meta=np.array(json.dumps(meta)),
    )
    size = args.out.stat().st_size
    if size > MAX_BYTES:
        args.out.unlink()
        sys.exit(f"{args.out}: {size / 1e6:.2f} MB exceeds the {MAX_BYTES / 1e6:.2f} MB limit; file removed")

    print(f"wrote {args.out} ({size / 1e6:.2f} MB, {size / 2**20:.2f} MiB)")
    step_db = meta["mel_quantisation"]["step_db"]
    print(
        f"mel bank: {len(names)} recordings, {offsets[-1]} frames x {cfg.n_mels} mels, "
        f"range [{lo:.2f}, {hi:.2f}] nats, step {step:.4f} nats = {step_db:.3f} dB"
    )
    for split, s in stats.items():
        print(
            f"{split:5s}: {s['count']} samples, labels {s['label_counts']}, mistranscribed {s['mistranscribed']:.3f}, "
            f"with typo {s['with_typo']:.3f}, "
            f"rule-based text-only accuracy {s['text_only_accuracy_rule_based']:.3f}"
        )
    print("examples:", list(arrays["train_text"][:8]))


if __name__ == "__main__":
    main()
