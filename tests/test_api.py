"""The Python API (``polymodal.train``, ``load``, ``Run``, ``Splits``, the registries) and ``--import`` on the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml
from torch import Tensor, nn
from torch.utils.data import Dataset

import polymodal
from polymodal.cli import _import_modules, build_parser, main
from polymodal.config import load_config, validate_config
from polymodal.errors import ConfigError, DataError

SRC = Path(__file__).resolve().parents[1] / "src"
CLASSES = ["a", "b", "c"]
# A small model that trains in a second or two: an 8x8 image and a (5, 4) feature sequence.
TINY = {
    "model": {
        "encoders": {
            "image": {"name": "lenet", "out_dim": 8, "channels": [4, 4]},
            "features": {"name": "transformer", "dim": 8, "depth": 1, "heads": 2},
        },
        "head": {"name": "linear"},
    },
    "data": {"batch_size": 16},
    "trainer": {"epochs": 2, "progress": False},
    "eval": {"noise_levels": [0.0]},
}


class Toy(Dataset):
    """Samples whose image and feature sequence both carry the class (their mean is shifted by it)."""

    def __init__(self, size: int, seed: int, labeled: bool = True) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.target = torch.randint(0, len(CLASSES), (size,), generator=generator)
        shift = self.target.float() * 2
        self.image = torch.randn(size, 1, 8, 8, generator=generator) + shift[:, None, None, None]
        self.features = torch.randn(size, 5, 4, generator=generator) + shift[:, None, None]
        self.labeled = labeled

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict:
        sample = {"inputs": {"image": self.image[i], "features": self.features[i]}, "index": i}
        return {**sample, "target": int(self.target[i])} if self.labeled else sample


class Edited(Dataset):
    """``Toy`` samples passed through ``edit`` (to make one of them malformed)."""

    def __init__(self, edit: Callable[[int, dict], object], size: int = 8) -> None:
        self.toy, self.edit = Toy(size, 0), edit

    def __len__(self) -> int:
        return len(self.toy)

    def __getitem__(self, i: int) -> object:
        return self.edit(i, self.toy[i])


def toy_splits() -> polymodal.Splits:
    return polymodal.Splits(Toy(96, 0), Toy(32, 1), Toy(32, 2), class_names=CLASSES)


class SumConfig(polymodal.ComponentConfig):
    out_dim: int = 8


class SumEncoder(nn.Module):
    """A custom encoder (registered by this module, see ``memory_run``): a linear map of the input's sums over its
    last axis."""

    def __init__(self, input_shape: tuple[int, ...], out_dim: int, kind: str) -> None:
        super().__init__()
        self.net = nn.Linear(int(torch.tensor(input_shape[:-1]).prod()), out_dim)
        self.out_dim = out_dim

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.net(x.sum(-1).flatten(1))


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory: pytest.TempPathFactory, scoped_registrations: None) -> polymodal.Run:
    """A run trained from Python on in-memory splits, with this module's custom image encoder (registered while the
    module's tests run)."""
    polymodal.ENCODERS.register("test_api_sum", SumConfig)(SumEncoder)
    out = tmp_path_factory.mktemp("api") / "RUN"
    return polymodal.train(TINY, {"model.encoders.image": {"name": "test_api_sum"}}, out=out, data=toy_splits())


def test_train_from_python_on_in_memory_data(memory_run: polymodal.Run):
    assert isinstance(memory_run, polymodal.Run) and memory_run.path.is_absolute()
    assert set(memory_run.metrics) >= {"test", "val", "per_modality", "missing"}
    assert memory_run.metrics["train_examples"] == 96
    assert memory_run.info["class_names"] == CLASSES and memory_run.info["modalities"] == ["image", "features"]
    config = memory_run.config
    assert config.data.name == "memory" and config.model.encoders["image"]["name"] == "test_api_sum"
    assert config.imports == [__name__]  # the module that registered the encoder


def test_predict_embed_and_evaluate_on_datasets(memory_run: polymodal.Run):
    run = polymodal.load(memory_run.path)
    rows = run.predict(Toy(5, 3, labeled=False))
    assert [r["id"] for r in rows] == list(range(5))
    assert all(r["prediction"] in CLASSES and set(r["probabilities"]) == set(CLASSES) for r in rows)
    assert rows == polymodal.predict(run.path, Toy(5, 3))  # the same rows from the module-level function
    report = run.evaluate(data=Toy(12, 4))
    assert report["data"] == "data" and report["examples"] == 12
    assert set(report["test"]) == {"accuracy", "macro_f1"} and set(report["per_modality"]) == {"image", "features"}
    vectors = run.embed("features", [torch.randn(5, 4), torch.randn(3, 4)])
    assert vectors.shape == (2, 8) and vectors.dtype.name == "float32"


def test_model_is_the_selected_weights_and_embeddings_are_searchable(memory_run: polymodal.Run):
    model = memory_run.model()
    assert isinstance(model, nn.Module) and not model.training
    assert sum(p.numel() for p in model.parameters()) == memory_run.metrics["params"]
    again = memory_run.model().state_dict()
    assert all(torch.equal(t, again[k]) for k, t in model.state_dict().items())
    vectors = memory_run.embed("features", [Toy(6, 7).features[i] for i in range(6)])
    index = polymodal.EmbeddingIndex(vectors, [f"s{i}" for i in range(6)], "features")
    _, rows = index.search(vectors[[4, 1]], k=1)
    assert rows[:, 0].tolist() == [4, 1]  # each vector's nearest neighbour is itself


def test_load_data_is_the_data_a_run_trains_and_is_scored_on(tmp_path: Path):
    overrides = {
        "data.max_train_samples": 48,
        "data.max_eval_samples": 24,
        "data.batch_size": 16,
        "trainer.epochs": 1,
        "trainer.scheduler.warmup_steps": 0,
        "trainer.seed": 3,
        "trainer.progress": False,
        "eval.noise_levels": [0.0],
    }
    run = polymodal.train("avdigits-joint", overrides, out=tmp_path / "run")
    data = polymodal.load_data(run.config)
    assert data.info() == run.info and len(data.train) == run.metrics["train_examples"] == 48
    assert len(data.test) == run.evaluate()["examples"] == 24
    assert data.train.indices == polymodal.load_data("avdigits-joint", overrides).train.indices
    other_seed = polymodal.load_data("avdigits-joint", {**overrides, "trainer.seed": 4})
    assert other_seed.train.indices != data.train.indices  # the seed picks the training samples
    with pytest.raises(DataError, match="^/nonexistent/avmnist: not an AV-MNIST build"):
        polymodal.load_data("avmnist-late", ["data.root=/nonexistent/avmnist"])


def test_a_dataset_without_a_modality_of_the_run(memory_run: polymodal.Run):
    class ImageOnly(Toy):
        def __getitem__(self, i: int) -> dict:
            sample = super().__getitem__(i)
            return {**sample, "inputs": {"image": sample["inputs"]["image"]}}

    report = memory_run.evaluate(data=ImageOnly(6, 5))
    assert report["missing_inputs"] == ["features"] and set(report["per_modality"]) == {"image"}
    assert all(r["present"] == ["image"] for r in memory_run.predict(ImageOnly(3, 5)))


def test_in_memory_runs_are_scored_on_data_passed_again(memory_run: polymodal.Run):
    with pytest.raises(ConfigError, match=r"^data.name: memory: .* not saved with a run; .*Run.evaluate\(data=...\)"):
        memory_run.evaluate(split="val")
    with pytest.raises(ConfigError, match="^split: expected val or test, got 'train'$"):
        memory_run.evaluate(split="train")
    with pytest.raises(DataError, match=r"^data: features is shape \(T, 3\) float32 per sample, but the run's data"):
        memory_run.predict([{"inputs": {"features": torch.zeros(5, 3)}, "index": 0}])


def test_load_refuses_a_folder_that_is_not_a_run(tmp_path: Path):
    with pytest.raises(ConfigError, match="not a polymodal run directory"):
        polymodal.load(tmp_path)


def test_unfinished_run_has_no_metrics(memory_run: polymodal.Run, tmp_path: Path):
    for name in ("config.yaml", "run.json"):
        (tmp_path / name).write_bytes((memory_run.path / name).read_bytes())
    assert polymodal.load(tmp_path).metrics is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda i, s: [s], r"data.train\[0\]: expected a sample \{'inputs': .*\}, got list"),
        (lambda i, s: {**s, "inputs": {}}, r"data.train\[0\].inputs: expected a mapping .*, got dict"),
        (
            lambda i, s: {**s, "inputs": {"image": s["inputs"]["image"].numpy()}},
            r"image: expected a tensor or None, got",
        ),
        (lambda i, s: {**s, "inputs": {"image": torch.zeros(8, 8)}}, r"\[0\].inputs.image: expected \(C, H, W\), got"),
        (lambda i, s: {**s, "inputs": {"depth": torch.zeros(1, 8, 8)}}, r"unknown modality 'depth'"),
        (lambda i, s: {**s, "inputs": {"text": torch.zeros(4)}}, r"inputs.text: expected integer tokens, got float32"),
        (
            lambda i, s: {**s, "inputs": {"image": torch.zeros(1, 8 + (i == 3), 8)}},
            r"data.train\[3\].inputs.image: shape \(1, 9, 8\) float32, but data.train\[0\] has shape \(1, 8, 8\)",
        ),
        (lambda i, s: {**s, "target": 3}, r"data.train\[0\].target: expected a class index 0-2 \(class_names has 3\)"),
        (lambda i, s: {**s, "index": "a"}, r"data.train\[0\].index: expected an integer id of the sample, got str"),
        (
            lambda i, s: {**s, "inputs": {**s["inputs"], "image": None}},
            r"data.train: image is None in each of the first 8 samples",
        ),
    ],
)
def test_malformed_samples_are_one_line(edit: Callable[[int, dict], object], message: str):
    with pytest.raises(DataError, match=message) as error:
        polymodal.Splits(Edited(edit), Toy(4, 1), Toy(4, 2), class_names=CLASSES).bundle()
    assert "\n" not in str(error.value)


def test_splits_must_agree_and_be_described():
    with pytest.raises(DataError, match=r"^data.val: empty"):
        polymodal.Splits(Toy(4, 0), Toy(0, 1), Toy(4, 2), class_names=CLASSES).bundle()
    wider = Edited(lambda i, s: {**s, "inputs": {**s["inputs"], "features": torch.zeros(5, 6)}})
    with pytest.raises(DataError, match=r"^data.test: features is shape \(T, 6\) float32 per sample, but data.train"):
        polymodal.Splits(Toy(4, 0), Toy(4, 1), wider, class_names=CLASSES).bundle()
    with pytest.raises(ConfigError, match="^class_names: expected distinct strings"):
        polymodal.Splits(Toy(4, 0), Toy(4, 1), Toy(4, 2), class_names=["a", "a", "b"]).bundle()
    with pytest.raises(DataError, match=r"^data.train\[0\].target: expected a number \(regression"):
        polymodal.Splits(Edited(lambda i, s: {**s, "target": "x"}), Toy(4, 1), Toy(4, 2)).bundle()
    bundle = polymodal.Splits(Toy(4, 0), Toy(4, 1), Toy(4, 2)).bundle()  # no class names: regression
    assert bundle.task == "regression" and bundle.shapes == {"image": (1, 8, 8), "features": (4,)}


def test_data_source_settings_are_refused_with_data_from_python(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"^data.max_train_samples: not used with data passed from Python"):
        polymodal.train(TINY, {"data.max_train_samples": 10}, out=tmp_path / "RUN", data=toy_splits())
    with pytest.raises(ConfigError, match=r"^data: expected polymodal.Splits"):
        polymodal.train(TINY, out=tmp_path / "RUN", data=[Toy(4, 0)])
    assert not (tmp_path / "RUN").exists()


def test_configs_from_names_mappings_and_objects():
    from_list = load_config("avdigits-joint", ["trainer.epochs=2", "data.batch_size=8"])
    from_dict = load_config("avdigits-joint", {"trainer.epochs": 2, "data.batch_size": 8})
    assert from_list == from_dict and from_dict.trainer.epochs == 2
    assert load_config(from_dict, {"trainer.seed": 4}).trainer.seed == 4 and from_dict.trainer.seed == 0
    assert load_config(from_dict.model_dump(mode="json")) == from_dict
    with pytest.raises(ConfigError, match="^overrides: expected a list of key.path=value strings or a mapping"):
        load_config("avdigits-joint", "trainer.epochs=2")


def test_imports_must_be_imported_before_validation():
    raw = {**TINY, "imports": ["polymodal_test_not_imported"]}
    with pytest.raises(ConfigError, match=r"^cfg: imports: .* module 'polymodal_test_not_imported', which is not "):
        validate_config(raw, "cfg")
    assert validate_config({**TINY, "imports": ["json"]}, "cfg").imports == ["json"]


def test_import_stays_light_and_train_stays_the_function():
    code = (
        "import sys, polymodal; light = 'torch' not in sys.modules\n"
        "import polymodal.training.trainer\n"
        "from polymodal.training import Trainer\n"
        "missing = sorted(set(polymodal.__all__) - set(dir(polymodal)))\n"
        "print(light, callable(polymodal.train), polymodal.train.__module__, missing)"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["True", "True", "polymodal.api", "[]"]


def test_every_component_command_takes_import():
    commands = [
        ["train", "r"],
        ["config", "r"],
        ["bridge", "r"],
        ["eval", "R"],
        ["predict", "R", "--data", "d", "--out", "o"],
        ["embed", "R", "--modality", "text", "x", "--out", "o"],
        ["index", "build", "R", "--modality", "text", "d", "--out", "o"],
        ["retrieve", "R", "--from", "text", "q"],
    ]
    for argv in commands:
        assert build_parser().parse_args([*argv, "--import", "m1", "--import", "m2"]).imports == ["m1", "m2"]


def test_import_finds_modules_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "polymodal_test_plugin.py").write_text("LOADED = True\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "polymodal_test_plugin", raising=False)
    _import_modules(["polymodal_test_plugin"])
    assert sys.modules["polymodal_test_plugin"].LOADED
    with pytest.raises(polymodal.errors.PolymodalError, match="^--import polymodal_test_absent: cannot import it"):
        _import_modules(["polymodal_test_absent"])


PLUGIN = """
import torch
from torch import nn

from polymodal import ENCODERS, ComponentConfig


class MeanConfig(ComponentConfig):
    out_dim: int = 8


@ENCODERS.register("test_cli_mean", MeanConfig)
class MeanEncoder(nn.Module):
    def __init__(self, input_shape, out_dim, kind):
        super().__init__()
        self.net = nn.Linear(input_shape[-1], out_dim)
        self.out_dim = out_dim

    def forward(self, x, lengths=None):
        return self.net(x.mean(1))
"""


@pytest.fixture
def cli_plugin(tmp_path: Path, scoped_registrations: None) -> Iterator[Path]:
    """A folder holding the module ``polymodal_test_cli_plugin``, which registers the encoder ``test_cli_mean``."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "polymodal_test_cli_plugin.py").write_text(PLUGIN, encoding="utf-8")
    yield folder
    sys.modules.pop("polymodal_test_cli_plugin", None)


def test_custom_encoder_from_the_cli(
    tmp_path: Path, digit_manifest: Callable[..., Path], cli_plugin: Path, monkeypatch
):
    """Trained with ``--import`` from one directory; evaluated from another, where the run names the module."""
    plugins, work, other = cli_plugin, tmp_path / "work", tmp_path / "other"
    for folder in (work, other):
        folder.mkdir()
    for name, rows, offset in (("train.csv", 30, 0), ("test.csv", 10, 30)):
        digit_manifest(name, rows=rows, offset=offset, columns=("text",), features=True)
        os.replace(tmp_path / name, work / name)
    os.replace(tmp_path / "files", work / "files")
    recipe = {
        **TINY,
        "data": {"name": "manifest", "train": "train.csv", "test": "test.csv", "batch_size": 8},
        "model": {
            "encoders": {"text": {"name": "transformer", "dim": 8, "depth": 1}, "features": {"name": "test_cli_mean"}},
            "head": {"name": "linear"},
        },
    }
    (work / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.chdir(work)
    assert main(["train", "recipe.yaml", "--import", "polymodal_test_cli_plugin", "--out", "RUN"]) == 0
    config = yaml.safe_load((work / "RUN" / "config.yaml").read_text(encoding="utf-8"))
    assert config["imports"] == ["polymodal_test_cli_plugin"]
    assert config["data"]["train"] == str(work / "train.csv")  # absolute: the run works from any directory

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(plugins)])}
    command = [sys.executable, "-m", "polymodal", "eval", str(work / "RUN")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=other, env=env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.endswith("pass --import polymodal_test_cli_plugin (in Python, import it first)\n")
    result = subprocess.run(
        [*command, "--import", "polymodal_test_cli_plugin"], capture_output=True, text=True, cwd=other, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("test: 10 examples\ntest accuracy (all modalities): ")

    monkeypatch.chdir(other)  # the Python API resolves relative paths too
    run = polymodal.train(
        work / "recipe.yaml", {"data.train": "../work/train.csv", "data.test": "../work/test.csv"}, out="RUN"
    )
    monkeypatch.chdir(work)
    assert run.config.data.test == str(work / "test.csv") and run.evaluate()["examples"] == 10
