"""Frozen-representation evaluation of an image-text encoder: linear probes, cross-modal retrieval, matching.

The caller passes two callables built from its model (``eval`` never sees a model class):
``embed(batch) -> {"image", "text", "image_projected", "text_projected"}`` with (B, D) features, and
``match(batch, order) -> (B, 2)`` logits of pairing image i with text ``order[i]`` (index 1: "matches").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from polymodal.eval.metrics import accuracy, retrieval_metrics
from polymodal.eval.robustness import move_to

Embed = Callable[[dict[str, Any]], dict[str, Tensor]]
Match = Callable[[dict[str, Any], Tensor], Tensor]


def linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    weight_decay: float = 1e-3,
    steps: int = 100,
) -> float:
    """Test accuracy of a multinomial logistic regression fit on frozen features.

    Features are standardised with the training mean and deviation; the linear layer is fit full-batch with L-BFGS
    on cross-entropy plus ``weight_decay * ||W||^2`` (the usual linear-evaluation protocol, as in CLIP's logistic
    regression probes, arXiv 2103.00020, sec. 3.2).

    Args:
        train_features: (N, D).
        train_labels: (N,) integer classes.
        test_features: (M, D).
        test_labels: (M,).
        weight_decay: L2 penalty on the weights.
        steps: L-BFGS iterations.

    Returns:
        Accuracy on the test features.
    """
    x, y = train_features.detach().double(), train_labels.long()
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    x = (x - mean) / std
    classes = int(max(int(train_labels.max()), int(test_labels.max()))) + 1
    weight = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        logits = ((test_features.detach().double() - mean) / std) @ weight + bias
    return accuracy(logits.argmax(-1), test_labels)


def mismatched_order(target: Tensor) -> Tensor:
    """For each i, the first j after i (cyclically) whose target differs: a caption that does not match image i.

    Rows whose target no other row has get their own index.
    """
    n = len(target)
    order = torch.arange(n)
    for i in range(n):
        for step in range(1, n):
            j = (i + step) % n
            if target[j] != target[i]:
                order[i] = j
                break
    return order


def collect_embeddings(embed: Embed, loader: Any, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Concatenates ``embed`` over a loader (no gradients), with the targets under ``"target"``."""
    parts: dict[str, list[Tensor]] = {}
    with torch.no_grad():
        for batch in loader:
            out = embed(move_to(batch, device))
            for k, v in {**out, "target": batch["target"]}.items():
                parts.setdefault(k, []).append(v.detach().float().cpu() if k != "target" else v.cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


def representation_report(
    embed: Embed, match: Match, train_loader: Any, test_loader: Any, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Image and text linear probes, image<->text retrieval and matching accuracy on the test split.

    Retrieval counts a gallery item as relevant when it has the query's target (every caption of the same digit
    describes the image equally well). Matching pairs each test image with its own caption (positive) and with the
    caption of the next sample of another target (negative), within each test batch.

    Returns:
        ``image_probe_acc``, ``text_probe_acc``, ``i2t_r1/5/10``, ``t2i_r1/5/10``, ``i2t_map``, ``t2i_map``,
        ``itm_acc``.
    """
    train = collect_embeddings(embed, train_loader, device)
    test = collect_embeddings(embed, test_loader, device)
    report = {
        f"{m}_probe_acc": linear_probe(train[m], train["target"], test[m], test["target"]) for m in ("image", "text")
    }
    similarity = test["image_projected"] @ test["text_projected"].T
    for name, sim in (("i2t", similarity), ("t2i", similarity.T)):
        scores = retrieval_metrics(sim, test["target"], test["target"])
        report.update({f"{name}_r{k}": scores[f"R@{k}"] for k in (1, 5, 10)})
        report[f"{name}_map"] = scores["mAP"]
    predictions, labels = [], []
    with torch.no_grad():
        for batch in test_loader:
            batch = move_to(batch, device)
            n = len(batch["target"])
            negative = mismatched_order(batch["target"].cpu())
            keep = negative != torch.arange(n)
            for order, label in ((torch.arange(n), 1), (negative, 0)):
                rows = torch.ones(n, dtype=torch.bool) if label else keep
                logits = match(batch, order.to(batch["target"].device))[rows.to(batch["target"].device)]
                predictions.append(logits.argmax(-1).cpu())
                labels.append(torch.full((int(rows.sum()),), label))
    report["itm_acc"] = accuracy(torch.cat(predictions), torch.cat(labels))
    return report
