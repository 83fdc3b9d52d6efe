"""What a run's data tells the rest of the library: a typed description handed from the data builder to the strategy.

A strategy never imports a dataset's module: it reads the :class:`DataSpec` it is given (the target kind, the
inputs, the classes and, for data whose samples belong to several tasks, the task table). The same description is
rebuilt from a saved run's ``run.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TaskSpec:
    """One task: its input modality, its output (``class`` or ``text``) and, for classes, its names."""

    name: str
    modality: str
    output: str
    classes: tuple[str, ...] = ()

    @property
    def metric(self) -> str:
        """Higher-is-better score: accuracy for classes, exact match for text."""
        return "accuracy" if self.output == "class" else "exact_match"


def class_offsets(tasks: Sequence[TaskSpec]) -> dict[str, int]:
    """Start of each class task's range in the global class list of a task table."""
    offsets, start = {}, 0
    for task in tasks:
        if task.output == "class":
            offsets[task.name] = start
            start += len(task.classes)
    return offsets


@dataclass(frozen=True)
class DataSpec:
    """The description of a run's data that strategies and the config checks receive.

    Attributes:
        task: the target kind: ``"classification"`` (class indices) or ``"regression"`` (values); ``"bridge"`` for
            the pseudo-pairs of a bridge, which have no targets.
        modalities: the inputs, in the data's order.
        class_names: the classes of classification data (over every task's classes with ``tasks``), else None.
        tasks: the task table of data whose samples each belong to one of several tasks, indexed by task id; a
            sample's target is then ``[task id, output...]``: the global class index (see :func:`class_offsets`)
            or the output bytes, 0 from the end on. Empty for data with one target per sample.
    """

    task: str
    modalities: tuple[str, ...] = ()
    class_names: tuple[str, ...] | None = None
    tasks: tuple[TaskSpec, ...] = ()

    def class_offsets(self) -> dict[str, int]:
        """Start of each class task's range in ``class_names`` (data with a task table)."""
        return class_offsets(self.tasks)

    def info(self) -> dict[str, Any]:
        """The task table as ``run.json`` stores it (nothing for data without one)."""
        return {"tasks": [asdict(t) for t in self.tasks]} if self.tasks else {}

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> DataSpec:
        """The description saved in a run's ``run.json``."""
        names = info.get("class_names")
        return cls(
            task=info["task"],
            modalities=tuple(info["modalities"]),
            class_names=tuple(names) if names else None,
            tasks=tuple(TaskSpec(**{**t, "classes": tuple(t["classes"])}) for t in info.get("tasks", ())),
        )
