"""Writes ``src/polymodal/data/assets/number_phrases.tsv``: 0-999 as English and French words (MultiModel tasks).

Run once at build time (``python scripts/build_number_phrases.py``); it needs ``num2words``, the package does not.
English drops the British "and" ("three hundred forty-two"), as in the parsing example of issue #7.
"""

from __future__ import annotations

from pathlib import Path

from num2words import num2words

OUT = Path(__file__).resolve().parents[1] / "src" / "polymodal" / "data" / "assets" / "number_phrases.tsv"


def main() -> None:
    rows = ["number\ten\tfr"]
    for number in range(1000):
        english = num2words(number, lang="en").replace(" and ", " ")
        rows.append(f"{number}\t{english}\t{num2words(number, lang='fr')}")
    OUT.write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(rows) - 1} numbers)")


if __name__ == "__main__":
    main()
