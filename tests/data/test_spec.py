"""The data description handed to strategies: built by the data builder, saved in run.json and read back."""

import json

from polymodal.data.sources import DataBundle
from polymodal.data.spec import DataSpec, TaskSpec

TASKS = (
    TaskSpec("digit", "image", "class", ("0", "1", "2")),
    TaskSpec("say", "audio", "text"),
    TaskSpec("who", "audio", "class", ("a", "b")),
)


def test_a_bundle_describes_its_data_and_run_json_gives_the_same_description_back():
    classes = ["digit:0", "digit:1", "digit:2", "who:a", "who:b"]
    bundle = DataBundle(
        [],
        [],
        [],
        "classification",
        ["image", "audio"],
        {"image": (1, 4, 4), "audio": (1, 2, 2)},
        {},
        classes,
        tasks=TASKS,
    )
    assert bundle.spec == DataSpec("classification", ("image", "audio"), tuple(classes), TASKS)
    saved = json.loads(json.dumps(bundle.info()))
    assert DataSpec.from_info(saved) == bundle.spec
    assert bundle.spec.class_offsets() == {"digit": 0, "who": 3}


def test_data_without_a_task_table_saves_none():
    bundle = DataBundle([], [], [], "regression", ["text"], {"text": ()}, {"text": "int64"})
    assert "tasks" not in bundle.info()
    assert DataSpec.from_info(bundle.info()) == DataSpec("regression", ("text",))
