import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from polymodal.data.collate import Collate
from polymodal.data.manifest import ManifestDataset, infer_column_modalities
from polymodal.errors import ConfigError, DataError
from polymodal.modalities.audio import AudioConfig
from polymodal.modalities.image import ImageConfig
from polymodal.modalities.text import TextConfig


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """Tiny real files of every kind under ``tmp_path/files``."""
    folder = tmp_path / "files"
    folder.mkdir()
    t = np.arange(1600) / 16000
    stereo = (np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1) * 20000).astype(np.int16)
    wavfile.write(folder / "a.wav", 16000, stereo)
    wavfile.write(folder / "b.WAV", 8000, (0.5 * np.sin(2 * np.pi * 300 * np.arange(800) / 8000)).astype(np.float32))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), mode="RGB").save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L").save(folder / "b.PNG")
    np.save(folder / "a.npy", rng.standard_normal((5, 3)).astype(np.float32))
    np.save(folder / "b.npy", rng.standard_normal((2, 3)))
    return folder


@pytest.fixture
def manifest(tmp_path: Path, files: Path) -> Path:
    return write_csv(
        tmp_path / "train.csv",
        ["id", "sound", "picture", "caption", "feats", "label"],
        [
            ["1", "files/a.wav", "files/a.png", "a dog barks", "files/a.npy", "dog"],
            ["2", str(files / "b.WAV"), "files/b.PNG", "", "files/b.npy", "cat"],
            ["3", "", "files/a.png", "a cat, purring", "", "cat"],
        ],
    )


def test_infers_modalities_and_decodes_every_kind(manifest: Path):
    ds = ManifestDataset(manifest, target="label", show_progress=False)
    assert ds.modalities == ("audio", "image", "text", "features")
    assert ds.columns == {"audio": "sound", "image": "picture", "text": "caption", "features": "feats"}
    assert ds.class_names == ["cat", "dog"] and ds.num_classes == 2
    torch.testing.assert_close(ds.targets, torch.tensor([1, 0, 0]))
    assert len(ds) == 3
    sample = ds[0]
    assert sample["index"] == 0 and sample["target"].dtype == torch.long
    inputs = sample["inputs"]
    assert inputs["audio"].shape == (1, 32, 64) and inputs["audio"].dtype == torch.float32
    assert inputs["image"].shape == (1, 28, 28)
    assert inputs["text"].dtype == torch.long and inputs["text"].ndim == 1
    assert inputs["features"].shape == (5, 3) and inputs["features"].dtype == torch.float32
    assert ds[1]["inputs"]["audio"].shape == (1, 32, 64)  # 8 kHz mono float32, absolute path
    assert ds[1]["inputs"]["features"].shape == (2, 3)  # float64 converted
    assert ds.shapes == {"audio": (1, 32, 64), "image": (1, 28, 28), "text": (), "features": (3,)}
    assert ds.dtypes["text"] == torch.long


def test_missing_cells_are_none_and_collate_marks_them_absent(manifest: Path):
    ds = ManifestDataset(manifest, target="label", show_progress=False)
    assert ds[1]["inputs"]["text"] is None
    assert ds[2]["inputs"]["audio"] is None and ds[2]["inputs"]["features"] is None
    batch = Collate(ds.shapes, ds.dtypes)([ds[i] for i in range(3)])
    assert batch["present"]["audio"].tolist() == [True, True, False]
    assert batch["present"]["text"].tolist() == [True, False, True]
    assert batch["inputs"]["features"].shape == (3, 5, 3)
    assert batch["lengths"]["features"].tolist() == [5, 2, 0]
    assert batch["inputs"]["audio"][2].abs().sum() == 0
    # A batch where every sample lacks a modality falls back to the dataset's shapes.
    alone = Collate(ds.shapes, ds.dtypes)([ds[2]])
    assert alone["inputs"]["audio"].shape == (1, 1, 32, 64)
    assert alone["inputs"]["features"].shape == (1, 1, 3)


def test_adapter_configs_are_applied(manifest: Path):
    ds = ManifestDataset(
        manifest,
        target="label",
        settings={
            "image": ImageConfig(size=8, channels=3),
            "audio": AudioConfig(n_mels=8, max_frames=4),
            "text": TextConfig(max_length=3),
        },
        show_progress=False,
    )
    assert ds.shapes["image"] == (3, 8, 8) and ds.shapes["audio"] == (1, 8, 4)
    assert ds[0]["inputs"]["text"].shape == (3,)


def test_declared_mapping_selects_columns_and_overrides_inference(tmp_path: Path, files: Path):
    path = write_csv(
        tmp_path / "m.csv",
        ["notes", "path", "y", "junk"],
        [["x.wav", "files/a.npy", "a", "files/a.png"], ["hello", "files/b.npy", "b", "mixed"]],
    )
    ds = ManifestDataset(path, "y", modalities={"path": "image", "notes": "text"}, show_progress=False)
    assert ds.modalities == ("text", "image")  # column order of the manifest
    assert ds.columns == {"text": "notes", "image": "path"}
    assert ds[0]["inputs"]["image"].shape == (1, 28, 28)  # .npy read as an image array
    assert ds[0]["inputs"]["text"].shape == (5,)


def test_class_names_are_reused_for_a_test_manifest(tmp_path: Path, files: Path, manifest: Path):
    train = ManifestDataset(manifest, target="label", show_progress=False)
    test_path = write_csv(
        tmp_path / "test.csv", ["caption", "label"], [["meow", "cat"], ["woof", "dog"], ["woof woof", "dog"]]
    )
    test = ManifestDataset(test_path, target="label", class_names=train.class_names, show_progress=False)
    assert test.class_names == ["cat", "dog"]
    torch.testing.assert_close(test.targets, torch.tensor([0, 1, 1]))
    bird = write_csv(tmp_path / "bird.csv", ["caption", "label"], [["meow", "cat"], ["tweet", "bird"]])
    with pytest.raises(DataError, match=r"bird\.csv: row 2, column 'label': label 'bird' is not one of the 2 known"):
        ManifestDataset(bird, target="label", class_names=train.class_names, show_progress=False)


def test_regression_targets(tmp_path: Path):
    path = write_csv(tmp_path / "r.csv", ["caption", "score"], [["a", "1.5"], ["b", "-2e-1"]])
    ds = ManifestDataset(path, target="score", task="regression", show_progress=False)
    assert ds.targets.dtype == torch.float32 and ds.class_names == [] and ds.num_classes == 0
    torch.testing.assert_close(ds.targets, torch.tensor([1.5, -0.2]))
    bad = write_csv(tmp_path / "bad.csv", ["caption", "score"], [["a", "1.5"], ["b", "nan"]])
    with pytest.raises(DataError, match=r"bad\.csv: row 2, column 'score': regression target 'nan' is not a finite"):
        ManifestDataset(bad, target="score", task="regression", show_progress=False)
    word = write_csv(tmp_path / "word.csv", ["caption", "score"], [["a", "high"]])
    with pytest.raises(DataError, match=r"word\.csv: row 1, column 'score': regression target 'high'"):
        ManifestDataset(word, target="score", task="regression", show_progress=False)


def test_bom_and_blank_lines_are_tolerated(tmp_path: Path):
    path = tmp_path / "bom.csv"
    path.write_text("caption,label\r\nhi,a\r\n\r\nyo,b\r\n", encoding="utf-8-sig")
    ds = ManifestDataset(path, target="label", show_progress=False)
    assert len(ds) == 2 and ds.columns == {"text": "caption"}


def test_infer_column_modalities_directly():
    rows = [{"a": "x.JPG", "b": "s.wav", "c": "f.npy", "d": "hi there"}, {"a": "y.webp", "b": "", "c": "", "d": "ok"}]
    assert infer_column_modalities(rows, ["a", "b", "c", "d"], "m.csv") == {
        "a": "image",
        "b": "audio",
        "c": "features",
        "d": "text",
    }


# ---- errors: each names the manifest (and row/column) and the problem, on one line ----


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    # No chained traceback: either nothing was being handled, or it was raised ``from None``.
    assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)
    return message


def test_missing_manifest(tmp_path: Path):
    with pytest.raises(DataError, match=r"nope\.csv: manifest not found") as err:
        ManifestDataset(tmp_path / "nope.csv", target="label", show_progress=False)
    one_line(err)


def test_empty_manifest(tmp_path: Path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: empty manifest \(no header row\)"):
        ManifestDataset(tmp_path / "empty.csv", target="label", show_progress=False)
    (tmp_path / "header.csv").write_text("caption,label\n")
    with pytest.raises(DataError, match=r"header\.csv: empty manifest \(a header but no rows\)"):
        ManifestDataset(tmp_path / "header.csv", target="label", show_progress=False)


def test_missing_target_column_lists_columns(tmp_path: Path):
    path = write_csv(tmp_path / "m.csv", ["caption", "class"], [["a", "b"]])
    with pytest.raises(ConfigError, match=r"m\.csv: target column 'label' not found \(columns: caption, class\)"):
        ManifestDataset(path, target="label", show_progress=False)


def test_missing_declared_column(tmp_path: Path):
    path = write_csv(tmp_path / "m.csv", ["caption", "label"], [["a", "b"]])
    with pytest.raises(ConfigError, match=r"m\.csv: declared column 'sound' not found \(columns: caption, label\)"):
        ManifestDataset(path, target="label", modalities={"sound": "audio"}, show_progress=False)


def test_unknown_modality_name(tmp_path: Path):
    path = write_csv(tmp_path / "m.csv", ["caption", "label"], [["a", "b"]])
    with pytest.raises(ConfigError, match=r"m\.csv: modalities\['caption'\]: unknown modality 'video' \(known: image"):
        ManifestDataset(path, target="label", modalities={"caption": "video"}, show_progress=False)


def test_several_columns_of_one_kind_are_separate_inputs(tmp_path: Path, files: Path):
    rows = [["files/a.png", "files/b.PNG", "a", "b", "x"], ["files/b.PNG", "", "c", "", "y"]]
    path = write_csv(tmp_path / "m.csv", ["front", "side", "title", "caption", "label"], rows)
    dataset = ManifestDataset(path, target="label", show_progress=False)
    assert dataset.modalities == ("image:front", "image:side", "text:title", "text:caption")
    assert dataset.columns == {
        "image:front": "front",
        "image:side": "side",
        "text:title": "title",
        "text:caption": "caption",
    }
    assert dataset.shapes["image:side"] == (1, 28, 28) and dataset.dtypes["text:title"] == torch.long
    batch = Collate(dataset.shapes, dataset.dtypes)([dataset[0], dataset[1]])
    assert batch["present"]["image:side"].tolist() == [True, False] and "text:caption" in batch["lengths"]
    # Declared: the same naming; a lone column of a kind keeps the kind's name.
    declared = ManifestDataset(
        path, target="label", modalities={"front": "image", "title": "text"}, show_progress=False
    )
    assert declared.modalities == ("image", "text")


def test_columns_missing_at_inference_are_absent_inputs(tmp_path: Path, files: Path):
    train = write_csv(tmp_path / "train.csv", ["photo", "clip", "label"], [["files/a.png", "files/a.wav", "x"]])
    trained = ManifestDataset(train, target="label", show_progress=False)
    mapping = {c: m for m, c in trained.columns.items()}
    # No clip column at all, and no label column: scored as missing, predicted without targets.
    other = write_csv(tmp_path / "other.csv", ["id", "photo"], [["r1", "files/b.PNG"], ["r2", ""]])
    dataset = ManifestDataset(
        other,
        target="label",
        modalities=mapping,
        class_names=["x"],
        shapes=trained.shapes,
        labeled=False,
        show_progress=False,
    )
    assert dataset.absent == ["clip"] and dataset.modalities == ("image", "audio") and not dataset.labeled
    assert dataset.shapes == trained.shapes and dataset.ids == ["r1", "r2"]
    batch = Collate(dataset.shapes, dataset.dtypes)([dataset[0], dataset[1]])
    assert batch["present"]["audio"].tolist() == [False, False] and batch["present"]["image"].tolist() == [True, False]
    assert batch["inputs"]["audio"].shape == (2, *trained.shapes["audio"])
    # Scoring still needs the target, and says how to predict instead.
    with pytest.raises(ConfigError, match=r"other\.csv: target column 'label' not found .*polymodal predict"):
        ManifestDataset(other, target="label", modalities=mapping, shapes=trained.shapes, show_progress=False)


def test_every_bad_cell_is_reported_at_once(tmp_path: Path, files: Path):
    rows = [["files/a.png", "0"], ["files/gone.png", "1"], ["files/a.wav", "0"], ["files/b.PNG", "1"]]
    path = write_csv(tmp_path / "m.csv", ["photo", "label"], rows)
    with pytest.raises(DataError) as err:
        ManifestDataset(path, target="label", modalities={"photo": "image"}, show_progress=False)
    lines = str(err.value).splitlines()
    assert lines[0] == f"{path}: 2 bad cells (fix them, or empty them to mark missing):"
    assert lines[1].startswith("  row 2, column 'photo': file not found") and "row 3, column 'photo'" in lines[2]


def test_long_text_cells_and_oversized_fields(tmp_path: Path, monkeypatch):
    long = "word " * 40_000  # 200 KB, over the csv module's default 128 KiB field limit
    path = write_csv(tmp_path / "m.csv", ["note", "label"], [["short", "a"], [long, "b"]])
    dataset = ManifestDataset(path, target="label", show_progress=False)
    assert dataset.modalities == ("text",) and len(dataset) == 2
    # Past the limit that remains, the error names the row.
    monkeypatch.setattr("polymodal.data.manifest.MAX_FIELD_BYTES", 1000)
    with pytest.raises(DataError, match=r"m\.csv: row 2: malformed CSV: field larger than field limit"):
        ManifestDataset(path, target="label", show_progress=False)


def test_mixed_column(tmp_path: Path, files: Path):
    path = write_csv(tmp_path / "m.csv", ["media", "label"], [["files/a.wav", "a"], ["files/a.png", "b"], ["hi", "c"]])
    with pytest.raises(
        ConfigError, match=r"m\.csv: column 'media' mixes audio \(1 cells\), image \(1 cells\), text \(1 cells\)"
    ) as err:
        ManifestDataset(path, target="label", show_progress=False)
    one_line(err)


def test_referenced_file_missing(tmp_path: Path, files: Path):
    path = write_csv(tmp_path / "m.csv", ["sound", "label"], [["files/a.wav", "a"], ["files/gone.wav", "b"]])
    missing = (files / "gone.wav").resolve()
    with pytest.raises(DataError, match=rf"m\.csv: row 2, column 'sound': file not found: {missing}") as err:
        ManifestDataset(path, target="label", show_progress=False)
    one_line(err)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("bad.wav", b"RIFF not really a wav", "not a readable WAV file"),
        ("bad.png", b"\x89PNG garbage", "not a readable image"),
        ("bad.npy", None, "contains NaN or inf values"),
        ("cube.npy", None, r"expected shape \(D,\) or \(T, D\)"),
        ("text.npy", None, "expected a numeric array"),
    ],
)
def test_adapter_errors_get_the_row_and_column(tmp_path: Path, files: Path, name: str, content, problem: str):
    target = files / name
    if content is not None:
        target.write_bytes(content)
    elif name == "bad.npy":
        np.save(target, np.array([[1.0, np.nan, 2.0]]))
    elif name == "cube.npy":
        np.save(target, np.zeros((2, 2, 2)))
    else:
        np.save(target, np.array([["a", "b"]]))
    path = write_csv(tmp_path / "m.csv", ["input", "label"], [[f"files/{name}", "a"]])
    with pytest.raises(DataError, match=rf"m\.csv: row 1, column 'input': .*{name}: {problem}") as err:
        ManifestDataset(path, target="label", show_progress=False)
    one_line(err)


def test_features_dimension_must_agree(tmp_path: Path, files: Path):
    np.save(files / "wide.npy", np.zeros((2, 4), dtype=np.float32))
    path = write_csv(tmp_path / "m.csv", ["feats", "label"], [["files/a.npy", "a"], ["", "a"], ["files/wide.npy", "b"]])
    with pytest.raises(
        DataError, match=r"m\.csv: row 3, column 'feats': features have dimension 4 but row 1 has 3 \(files/wide.npy\)"
    ):
        ManifestDataset(path, target="label", show_progress=False)


def test_empty_target_cell(tmp_path: Path):
    path = write_csv(tmp_path / "m.csv", ["caption", "label"], [["a", "x"], ["b", ""]])
    with pytest.raises(DataError, match=r"m\.csv: row 2, column 'label': empty target cell"):
        ManifestDataset(path, target="label", show_progress=False)


def test_entirely_empty_column(tmp_path: Path):
    path = write_csv(tmp_path / "m.csv", ["caption", "sound", "label"], [["a", "", "x"], ["b", "", "y"]])
    with pytest.raises(DataError, match=r"m\.csv: column 'sound' is empty in every row"):
        ManifestDataset(path, target="label", show_progress=False)
    with pytest.raises(DataError, match=r"m\.csv: column 'sound' is empty in every row"):
        ManifestDataset(path, target="label", modalities={"sound": "audio"}, show_progress=False)


def test_row_with_wrong_number_of_cells(tmp_path: Path):
    (tmp_path / "m.csv").write_text("caption,label\nhello, world,x\n")
    with pytest.raises(DataError, match=r"m\.csv: row 1 \(line 2\) has 3 cells but the header has 2 columns"):
        ManifestDataset(tmp_path / "m.csv", target="label", show_progress=False)


def test_unknown_task(tmp_path: Path):
    path = write_csv(tmp_path / "m.csv", ["caption", "label"], [["a", "b"]])
    with pytest.raises(ConfigError, match="data.task: unknown task 'ranking'"):
        ManifestDataset(path, target="label", task="ranking", show_progress=False)


def test_not_utf8(tmp_path: Path):
    (tmp_path / "m.csv").write_bytes("caption,label\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"m\.csv: not UTF-8 text"):
        ManifestDataset(tmp_path / "m.csv", target="label", show_progress=False)


def test_duplicate_and_unnamed_header_columns(tmp_path: Path):
    (tmp_path / "dup.csv").write_text("caption,caption,label\na,b,c\n")
    with pytest.raises(DataError, match=r"dup\.csv: duplicate column name\(s\) 'caption' in the header"):
        ManifestDataset(tmp_path / "dup.csv", target="label", show_progress=False)
    (tmp_path / "blank.csv").write_text("caption,,label\na,b,c\n")
    with pytest.raises(DataError, match=r"blank\.csv: header column 2 has no name"):
        ManifestDataset(tmp_path / "blank.csv", target="label", show_progress=False)


def test_progress_bar_is_not_drawn_when_stderr_is_not_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture):
    # A bar in a log file or pipe would come before any one-line error; tqdm draws only on a terminal.
    path = write_csv(tmp_path / "m.csv", ["caption", "label"], [["a", "b"]])
    ManifestDataset(path, target="label")
    assert "decoding m.csv" not in capsys.readouterr().err
