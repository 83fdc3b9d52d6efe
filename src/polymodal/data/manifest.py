"""A dataset over a CSV manifest of the user's own files, so a user trains without writing code.

A manifest has one row per sample and a header row. Each input column holds, per row, a path to a file
(relative to the manifest's folder, or absolute) or inline text; an empty cell marks the modality missing for that
sample. One more column holds the target. For example::

    id,audio,image,caption,label
    1,clips/a.wav,pics/a.png,a dog barks,dog
    2,clips/b.wav,,a cat,cat

Column modalities are inferred from the cells by the file suffixes each registered adapter reads
(``polymodal.modalities.adapters``: ``.wav`` -> audio, image extensions -> image, ``.npy`` -> features, anything else
-> text) unless they are declared.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from polymodal.data.decode_cache import DecodeCache
from polymodal.data.vocab import adapter_kind, check_modality, is_features, is_sequence, modality_kind
from polymodal.errors import ConfigError, DataError
from polymodal.modalities.adapters import Adapter, adapter, file_kinds, reads_files, settings_class
from polymodal.progress import progress, say
from polymodal.registry import ComponentConfig

TASKS: tuple[str, ...] = ("classification", "regression")
# Columns never read as inputs unless declared.
ID_COLUMN = "id"
# Bad cells listed in one decoding error.
MAX_REPORTED = 10


def infer_column_modalities(
    rows: Sequence[Mapping[str, str]], columns: Sequence[str], source: str = "manifest"
) -> dict[str, str]:
    """Infers each column's modality from its non-empty cells.

    A column whose cells all end in a suffix one adapter reads is of that adapter's kind (``.wav``: audio, image
    extensions: image, ``.npy``: features); one whose cells end in none of them is text. Suffixes are matched
    case-insensitively.

    Args:
        rows: manifest rows, each mapping a column name to its (stripped) cell.
        columns: the input columns to infer, in order.
        source: the manifest's name, used in error messages.

    Returns:
        ``{column: input name}`` in the order of ``columns`` (see :func:`input_names`).

    Raises:
        ConfigError: a column mixes kinds (e.g. wav files and text).
        DataError: a column has no non-empty cell.
    """
    suffixes, other = file_kinds()
    inferred: dict[str, str] = {}
    for column in columns:
        counts: dict[str, int] = {}
        for row in rows:
            cell = row.get(column) or ""
            if cell:
                kind = suffixes.get(Path(cell).suffix.lower(), other)
                counts[kind] = counts.get(kind, 0) + 1
        if not counts:
            raise DataError(f"{source}: column {column!r} is empty in every row")
        if len(counts) > 1:
            mix = ", ".join(f"{k} ({v} cells)" for k, v in sorted(counts.items()))
            raise ConfigError(
                f"{source}: column {column!r} mixes {mix}; make every cell the same kind or declare data.modalities"
            )
        inferred[column] = next(iter(counts))
    return input_names(inferred)


def input_names(kinds: Mapping[str, str]) -> dict[str, str]:
    """``{column: kind}`` -> ``{column: input name}``: the kind itself when one column has it, else ``kind:column``.

    Two image columns ``front`` and ``side`` become the inputs ``image:front`` and ``image:side``, each with its own
    encoder; a lone ``photo`` column of images is the input ``image``.
    """
    counts: dict[str, int] = {}
    for kind in kinds.values():
        counts[modality_kind(kind)] = counts.get(modality_kind(kind), 0) + 1
    return {c: k if ":" in k or counts[k] == 1 else f"{k}:{c}" for c, k in kinds.items()}


# Python's csv module refuses fields over 128 KiB by default; long texts are legitimate cells.
MAX_FIELD_BYTES = 64 * 1024 * 1024


def read_manifest(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Reads a CSV manifest (utf-8, BOM tolerated) into its header and rows of stripped cells."""
    if not path.is_file():
        raise DataError(f"{path}: manifest not found")
    records: list[tuple[int, list[str]]] = []
    header = None
    limit = csv.field_size_limit(MAX_FIELD_BYTES)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            # Blank lines (often a trailing newline) are skipped; a line of empty cells is a row like any other.
            for record in reader:
                if record:
                    records.append((reader.line_num, record))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        where = f"row {len(records) + 1}" if header is not None else "header"
        raise DataError(f"{path}: {where}: malformed CSV: {err} (check quoting)") from None
    finally:
        csv.field_size_limit(limit)
    if not header or not any(name.strip() for name in header):
        raise DataError(f"{path}: empty manifest (no header row)")
    columns = [name.strip() for name in header]
    if "" in columns:
        raise DataError(f"{path}: header column {columns.index('') + 1} has no name")
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise DataError(f"{path}: duplicate column name(s) {', '.join(map(repr, duplicates))} in the header")
    if not records:
        raise DataError(f"{path}: empty manifest (a header but no rows)")
    rows = []
    for number, (line, record) in enumerate(records, start=1):
        if len(record) != len(columns):
            raise DataError(
                f"{path}: row {number} (line {line}) has {len(record)} cells but the header has {len(columns)} "
                "columns (check quoting of commas)"
            )
        rows.append({c: cell.strip() for c, cell in zip(columns, record, strict=True)})
    return columns, rows


def _resolve(cell: str, folder: Path) -> Path:
    """The file a cell names: ``~`` expanded, relative to the manifest's folder, resolved."""
    file = Path(cell).expanduser()
    return (file if file.is_absolute() else folder / file).resolve()


class ManifestDataset(torch.utils.data.Dataset):
    """Samples listed in a CSV manifest, every file decoded at construction so bad files fail before training.

    Args:
        path: the CSV manifest; relative file paths in it are resolved against its folder.
        target: name of the target column.
        modalities: optional ``{column: modality}``; when given, only these columns are inputs and nothing is
            inferred. When omitted, every column except ``target`` and ``id`` is an input of an inferred modality.
        task: ``"classification"`` (string labels) or ``"regression"`` (finite floats).
        class_names: classification only: the label set to use (e.g. the training manifest's, for a test manifest);
            a target outside it is an error. Default: the sorted unique targets of this manifest.
        settings: each adapter kind's settings (``{"image": ImageConfig(...)}``, as ``data.image`` holds them); a
            kind not given takes its defaults.
        show_progress: show a progress bar while decoding.
        shapes: the training data's per-sample shapes, for a manifest scored or predicted with a trained run: a
            declared column the file lacks, or leaves empty, is then an input missing for every sample.
        labeled: whether the target column is needed.
        cache: the decode cache's folder (:mod:`polymodal.data.decode_cache`); None decodes every time.

    Attributes:
        modalities: modality names, in column order.
        columns: ``{modality: column}``.
        class_names: label names (empty for regression).
        num_classes: ``len(class_names)`` (0 for regression).
        targets: LongTensor(N) of class indices, or FloatTensor(N) for regression.
        shapes: per-sample shape of each modality for ``Collate`` placeholders: image (C, H, W), audio
            (1, n_mels, T), text () per token, features (D,) per step.
        dtypes: dtype of each modality (text is ``torch.long``).
    """

    def __init__(
        self,
        path: str | Path,
        target: str,
        modalities: dict[str, str] | None = None,
        task: str = "classification",
        class_names: list[str] | None = None,
        settings: Mapping[str, ComponentConfig] | None = None,
        show_progress: bool = True,
        shapes: Mapping[str, tuple[int, ...]] | None = None,
        labeled: bool = True,
        cache: Path | None = None,
    ) -> None:
        self.path = Path(path)
        source = str(path)
        if task not in TASKS:
            raise ConfigError(f"data.task: unknown task {task!r} (known: {', '.join(TASKS)})")
        if task == "regression" and class_names:
            raise ConfigError(f"{source}: class_names given for a regression task")
        header, rows = read_manifest(self.path)
        self.labeled = labeled and target in header
        if labeled and target not in header:
            hint = "; to predict without labels use `polymodal predict`" if shapes is not None else ""
            raise ConfigError(f"{source}: target column {target!r} not found (columns: {', '.join(header)}){hint}")
        if shapes is not None and modalities is None:
            raise ConfigError(f"{source}: the column mapping is needed with shapes")
        # With the training data's shapes (scoring or predicting with a trained run), a declared column that the
        # file lacks, or leaves empty in every row, is an input missing for every sample.
        self.absent: list[str] = []
        if shapes is not None and modalities is not None:
            self.absent = [c for c in modalities if c not in header or not any(row[c] for row in rows)]
        mapping = self._resolve_columns(header, rows, target, modalities, source, set(self.absent))

        self.task = task
        self.columns: dict[str, str] = {m: c for c, m in mapping.items()}
        self.modalities: tuple[str, ...] = tuple(mapping.values())
        if self.labeled:
            self.class_names, self.targets = self._parse_targets(rows, target, task, class_names, source)
        else:  # nothing to score: predictions only
            self.class_names = list(class_names or [])
            self.targets = torch.zeros(len(rows), dtype=torch.long if task == "classification" else torch.float32)
        self.num_classes = len(self.class_names)
        self.ids = [row.get(ID_COLUMN, "") or str(number) for number, row in enumerate(rows, start=1)]
        # The raw cells (resolved file paths, or the text), for encoders with their own preprocessing (pretrained
        # spaces); "" where a cell is empty.
        self._inputs, self.cells = self._decode_cached(rows, settings or {}, source, show_progress, cache)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, torch.dtype] = {}
        for m in self.modalities:
            example = next((x for x in self._inputs[m] if x is not None), None)
            if example is None:
                self.shapes[m] = tuple(shapes[m]) if shapes is not None else ()
                self.dtypes[m] = torch.long if modality_kind(m) == "text" else torch.float32
                continue
            shape = tuple(example.shape)
            self.shapes[m] = shape[1:] if is_sequence(m) else shape
            self.dtypes[m] = example.dtype

    @staticmethod
    def _resolve_columns(
        header: list[str],
        rows: list[dict[str, str]],
        target: str,
        declared: dict[str, str] | None,
        source: str,
        absent: set[str] | None = None,
    ) -> dict[str, str]:
        """Returns ``{column: input name}`` in header order, declared or inferred; ``absent`` declared columns (for
        a trained run's inputs) may be missing from the header or empty, and come last."""
        if declared is None:
            columns = [c for c in header if c not in (target, ID_COLUMN)]
            if not columns:
                raise ConfigError(
                    f"{source}: no input columns besides the target {target!r} (columns: {', '.join(header)})"
                )
            return infer_column_modalities(rows, columns, source)
        if not declared:
            raise ConfigError(f"{source}: data.modalities is empty; name at least one input column")
        absent = absent or set()
        for column, modality in declared.items():
            if column in absent:
                check_modality(modality, where=f"{source}: modalities[{column!r}]")
                continue
            if column not in header:
                raise ConfigError(f"{source}: declared column {column!r} not found (columns: {', '.join(header)})")
            if column == target:
                raise ConfigError(f"{source}: column {column!r} is the target and cannot also be an input")
            check_modality(modality, where=f"{source}: modalities[{column!r}]")
        ordered = [c for c in header if c in declared and c not in absent] + [c for c in declared if c in absent]
        mapping = input_names({c: declared[c] for c in ordered})
        for column in mapping:
            if column not in absent and not any(row[column] for row in rows):
                raise DataError(f"{source}: column {column!r} is empty in every row")
        return mapping

    @staticmethod
    def _parse_targets(
        rows: list[dict[str, str]], target: str, task: str, class_names: list[str] | None, source: str
    ) -> tuple[list[str], Tensor]:
        for number, row in enumerate(rows, start=1):
            if not row[target]:
                raise DataError(f"{source}: row {number}, column {target!r}: empty target cell")
        if task == "regression":
            values = []
            for number, row in enumerate(rows, start=1):
                try:
                    value = float(row[target])
                except ValueError:
                    value = math.nan
                if not math.isfinite(value):
                    raise DataError(
                        f"{source}: row {number}, column {target!r}: regression target {row[target]!r} is not a "
                        "finite number"
                    )
                values.append(value)
            return [], torch.tensor(values, dtype=torch.float32)
        if class_names is None:
            names = sorted({row[target] for row in rows})
        else:
            names = list(class_names)
            if len(set(names)) != len(names):
                raise ConfigError(f"{source}: class_names has duplicates: {names}")
        index = {name: i for i, name in enumerate(names)}
        labels = []
        for number, row in enumerate(rows, start=1):
            if row[target] not in index:
                shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
                raise DataError(
                    f"{source}: row {number}, column {target!r}: label {row[target]!r} is not one of the "
                    f"{len(names)} known classes ({shown})"
                )
            labels.append(index[row[target]])
        return names, torch.tensor(labels, dtype=torch.long)

    def _decode_cached(
        self,
        rows: list[dict[str, str]],
        given: Mapping[str, ComponentConfig],
        source: str,
        show_progress: bool,
        cache: Path | None,
    ) -> tuple[dict[str, list[Tensor | None]], dict[str, list[str]]]:
        """:meth:`_decode` through the decode cache in ``cache`` (when given): read back when the manifest, its
        files and the settings are those of a cached decode, else decoded and stored."""
        kinds = {adapter_kind(m) for m in self.modalities}
        configs = {k: given[k] if k in given else settings_class(k)() for k in kinds}
        entry, key = None, None
        if cache is not None:
            settings = {k: configs[k].model_dump(mode="json") for k in kinds}
            entry = DecodeCache(cache, self.path, self.columns, settings)
            key = entry.key(self._files(rows))
            stored = entry.load(key, len(rows)) if key is not None else None
            if stored is not None:
                say(f"{self.path.name}: {len(rows)} rows read from the decode cache ({entry.path})", show_progress)
                return stored
        inputs, cells = self._decode(rows, configs, source, show_progress)
        if entry is not None and key is not None:
            entry.save(key, inputs, cells)
        return inputs, cells

    def _files(self, rows: list[dict[str, str]]) -> list[Path | None]:
        """The file each input cell names, row by row (None for text and empty cells), as decoding resolves it."""
        files: list[Path | None] = []
        for row in rows:
            for m in self.modalities:
                cell = row.get(self.columns[m], "")
                files.append(_resolve(cell, self.path.parent) if cell and reads_files(adapter_kind(m)) else None)
        return files

    def _decode(
        self, rows: list[dict[str, str]], configs: Mapping[str, ComponentConfig], source: str, show_progress: bool
    ) -> tuple[dict[str, list[Tensor | None]], dict[str, list[str]]]:
        """Decodes every cell of every input column, checking that feature dimensions agree across rows."""
        adapters = {m: adapter(adapter_kind(m), configs[adapter_kind(m)]) for m in self.modalities}
        inputs: dict[str, list[Tensor | None]] = {m: [] for m in self.modalities}
        cells: dict[str, list[str]] = {m: [] for m in self.modalities}
        bar = progress(rows, desc=f"decoding {self.path.name}", unit="row", enabled=show_progress)
        try:
            self._decode_rows(bar, adapters, source, self.path.parent, inputs, cells)
        except BaseException:
            bar.leave = False  # erase the half-drawn bar so the error line stands alone
            raise
        finally:
            bar.close()
        return inputs, cells

    def _decode_rows(
        self,
        rows: Any,
        adapters: dict[str, Adapter],
        source: str,
        folder: Path,
        inputs: dict[str, list[Tensor | None]],
        cells: dict[str, list[str]],
    ) -> None:
        """Appends each row's decoded cells (None for an empty cell) to ``inputs``, and its raw cells to ``cells``.

        Every row is tried, so one error lists every bad cell (the first ``MAX_REPORTED`` of them), not one per run.
        """
        first_dim: dict[str, tuple[int, int]] = {}  # modality -> (D, row number that set it)
        bad: list[str] = []
        for number, row in enumerate(rows, start=1):
            for m in self.modalities:
                column = self.columns[m]
                cell = row.get(column, "")
                if not cell:
                    inputs[m].append(None)
                    cells[m].append("")
                    continue
                try:
                    value, resolved = self._decode_cell(cell, adapters[m], folder)
                    if is_features(m):
                        dim = int(value.shape[-1])
                        first_dim.setdefault(m, (dim, number))
                        if first_dim[m][0] != dim:
                            raise DataError(
                                f"features have dimension {dim} but row {first_dim[m][1]} has "
                                f"{first_dim[m][0]} ({cell})"
                            )
                except DataError as err:
                    bad.append(f"row {number}, column {column!r}: {err}")
                    value, resolved = None, ""
                inputs[m].append(value)
                cells[m].append(resolved)
        if len(bad) == 1:
            raise DataError(f"{source}: {bad[0]}")
        if bad:
            shown = "\n  ".join(bad[:MAX_REPORTED])
            more = f"\n  ... and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
            raise DataError(
                f"{source}: {len(bad)} bad cells (fix them, or empty them to mark missing):\n  {shown}{more}"
            )

    @staticmethod
    def _decode_cell(cell: str, adapter: Adapter, folder: Path) -> tuple[Tensor, str]:
        """One non-empty cell -> (tensor, the resolved file path or the text itself)."""
        if not adapter.extensions:
            return adapter.read(cell), cell
        file = _resolve(cell, folder)
        if not file.exists():
            raise DataError(f"file not found: {file}")
        if not file.is_file():
            raise DataError(f"not a file: {file}")
        return adapter.read(file), str(file)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "inputs": {m: self._inputs[m][index] for m in self.modalities},
            "target": self.targets[index],
            "index": index,
        }
