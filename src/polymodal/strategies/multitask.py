"""Multi-task training of one model on tasks with different input and output modalities (MultiModel)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, cast

import torch
from pydantic import Field
from torch import Tensor
from torch.utils.data import Subset

from polymodal.data.collate import move_to
from polymodal.data.spec import DataSpec
from polymodal.data.task_sampling import TaskBatchSampler, TaskTable
from polymodal.eval.multitask import expert_utilisation, plot_expert_utilisation, task_scores
from polymodal.models.multimodel import MultiModel
from polymodal.objectives import cross_entropy, masked_token_loss
from polymodal.objectives.load_balancing import load_balancing_loss
from polymodal.registry import ComponentConfig
from polymodal.strategies.base import STRATEGIES, Needs, Strategy


class MultitaskConfig(ComponentConfig):
    importance_weight: float = Field(0.01, ge=0)
    load_weight: float = Field(0.01, ge=0)
    sampling: Literal["mixed", "round_robin", "proportional"] = "mixed"


@STRATEGIES.register("multitask", MultitaskConfig)
class MultitaskStrategy(Strategy[MultiModel, MultitaskConfig]):
    """Every task through one shared body; one optimizer update per task present in a batch.

    "One Model To Learn Them All" (Kaiser et al., arXiv 1706.05137): a :class:`~polymodal.models.MultiModel` is trained
    on all tasks at once; a class task's loss is cross-entropy over its own range of the class output net, a text
    task's loss is the teacher-forced byte cross-entropy of the decoder (end byte included). Each mixture-of-experts
    layer adds the importance and load balancing loss of Shazeer et al. (arXiv 1701.06538, eq. 7 and 11).

    Task sampling (``sampling``): ``mixed`` lets the Trainer's uniform shuffle mix tasks in a batch, and ``substeps``
    splits it into single-task parts, each its own update (tasks drawn in proportion to their size);
    ``proportional`` and ``round_robin`` give the Trainer single-task batches, as the paper trains each step on one
    task (:class:`~polymodal.data.task_sampling.TaskBatchSampler`).

    Args:
        model: a ``MultiModel``.
        data: the data's description, with its task table (``data.tasks``): a sample's target is ``[task id,
            output...]``, a global class index or the output bytes.
        importance_weight: ``w_importance`` of the balancing loss.
        load_weight: ``w_load`` of the balancing loss.
        sampling: ``mixed``, ``round_robin`` or ``proportional``.
    """

    @classmethod
    def needs(cls, options: MultitaskConfig) -> Needs:
        return Needs(model={"task_body": "strategy.name"}, tasks=("classification",), task_table=True)

    def __init__(
        self, model: MultiModel, data: DataSpec, importance_weight: float, load_weight: float, sampling: str
    ) -> None:
        super().__init__(model, data)
        self.importance_weight, self.load_weight = importance_weight, load_weight
        self.sampling = sampling
        self.tasks = data.tasks
        self.offsets = data.class_offsets()

    def batch_sampler(self, dataset: Any, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        if self.sampling == "mixed":
            return None
        # A ``data.max_train_samples`` subset keeps the task ids of the rows it selected.
        tasks = (
            cast(TaskTable, dataset.dataset).tasks[dataset.indices] if isinstance(dataset, Subset) else dataset.tasks
        )
        return TaskBatchSampler(tasks, batch_size, seed, self.sampling, rank, world_size)

    def substeps(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """One part per task present in the batch, holding only that task's rows and input modality."""
        tasks = batch["target"][:, 0]
        parts = []
        for task_id in tasks.unique().tolist():
            rows = (tasks == task_id).nonzero(as_tuple=True)[0]
            modality = self.tasks[task_id].modality
            lengths = batch["lengths"].get(modality)
            parts.append(
                {
                    "task": task_id,
                    "input": batch["inputs"][modality][rows],
                    "lengths": None if lengths is None else lengths[rows],
                    "target": batch["target"][rows],
                }
            )
        return parts

    def _output_loss(self, part: dict[str, Any]) -> Tensor:
        spec = self.tasks[part["task"]]
        task = part["target"][:, 0]
        output = part["target"][:, 1:]
        if spec.output == "class":
            states = self.model(spec.modality, part["input"], part["lengths"], task)
            start = self.offsets[spec.name]
            logits = self.model.class_logits(states)[:, start : start + len(spec.classes)]
            return cross_entropy(logits, output[:, 0] - start)
        # Teacher forcing: the decoder reads [task, y_1 .. y_{n-1}] and predicts y_1 .. y_n, the end byte (0) included.
        size = (output != 0).sum(1) + 1
        width = int(size.max())
        states = self.model(spec.modality, part["input"], part["lengths"], task, output[:, : width - 1])
        valid = torch.arange(width, device=output.device)[None] < size[:, None]
        return masked_token_loss(self.model.token_logits(states), output[:, :width], valid)

    def balance_loss(self) -> Tensor:
        """The balancing loss summed over the MoE layers of the last forward pass (0 without MoE)."""
        total = torch.zeros((), device=next(self.model.parameters()).device)
        for layer in self.model.moe_layers().values():
            if layer.importance is None or layer.load is None:
                continue  # a layer that has not run yet has nothing to balance
            total = total + load_balancing_loss(layer.importance, layer.load, self.importance_weight, self.load_weight)
        return total

    def step(self, part: dict[str, Any]) -> dict[str, Tensor]:
        task_loss = self._output_loss(part)
        balance = self.balance_loss()
        return {"loss": task_loss + balance, f"{self.tasks[part['task']].name}_loss": task_loss, "balance": balance}

    @torch.no_grad()
    def _predict_part(self, part: dict[str, Any]) -> Tensor:
        spec = self.tasks[part["task"]]
        task = part["target"][:, 0]
        out = torch.zeros_like(part["target"])
        out[:, 0] = task
        if spec.output == "class":
            start = self.offsets[spec.name]
            states = self.model(spec.modality, part["input"], part["lengths"], task)
            out[:, 1] = self.model.class_logits(states)[:, start : start + len(spec.classes)].argmax(-1) + start
        else:
            length = part["target"].shape[1] - 1  # the targets' output width
            out[:, 1:] = self.model.generate(spec.modality, part["input"], part["lengths"], task, length)
        return out

    def predict(self, batch: dict[str, Any]) -> Tensor:
        """Packed predictions (B, 1 + L) laid out like the targets: task id, then class or bytes."""
        out = torch.zeros_like(batch["target"])
        tasks = batch["target"][:, 0]
        for part in self.substeps(batch):
            out[tasks == part["task"]] = self._predict_part(part)
        return out

    def _routing(self, part: dict[str, Any]) -> dict[str, Tensor]:
        """Tokens routed to each expert per MoE layer in one teacher-forced pass (the decoder as in training)."""
        self._output_loss(part)
        layers = self.model.moe_layers().items()
        return {name: layer.routed.sum(0).cpu() for name, layer in layers if layer.routed is not None}

    @torch.no_grad()
    def evaluate(self, loader: Any, device: torch.device | str, plots_dir: Path | None = None) -> dict[str, Any]:
        """Per-task scores, their mean (``score``) and expert utilisation per task.

        Returns:
            ``{"metrics": {"<task>_<metric>": v, ..., "score": mean}, "tasks": {task: {"metric", "value",
            "examples"}}, "expert_utilisation": {layer: {task: [share per expert]}}}``; with ``plots_dir``, also
            writes ``expert_utilisation.png`` there.
        """
        predictions, targets = [], []
        counts: dict[str, dict[str, Tensor]] = {}
        for batch in loader:
            batch = move_to(batch, device)
            predictions.append(self.predict(batch).cpu())
            targets.append(batch["target"].cpu())
            for part in self.substeps(batch):
                name = self.tasks[part["task"]].name
                for layer, routed in self._routing(part).items():
                    by_task = counts.setdefault(layer, {})
                    by_task[name] = by_task.get(name, 0) + routed
        scores = task_scores(torch.cat(predictions), torch.cat(targets), self.tasks)
        metrics = {f"{task}_{s['metric']}": s["value"] for task, s in scores.items()}
        metrics["score"] = sum(s["value"] for s in scores.values()) / max(1, len(scores))
        order = [t.name for t in self.tasks]
        counts = {layer: dict(sorted(c.items(), key=lambda kv: order.index(kv[0]))) for layer, c in counts.items()}
        utilisation = expert_utilisation(counts)
        if plots_dir is not None and utilisation:
            plot_expert_utilisation(utilisation, Path(plots_dir) / "expert_utilisation.png")
        return {"metrics": metrics, "tasks": scores, "expert_utilisation": utilisation}
