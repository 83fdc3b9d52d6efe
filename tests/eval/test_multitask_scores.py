"""Per-task scores and expert utilisation of multi-task runs."""

import torch

from polymodal.data.multitask_digits import TaskSpec
from polymodal.eval.multitask import exact_match, expert_utilisation, plot_expert_utilisation, task_scores

TASKS = (TaskSpec("digits", "image", "class", ("a", "b")), TaskSpec("words", "text", "text"))


def test_exact_match_needs_the_whole_sequence_and_the_end():
    target = torch.tensor([[5, 6, 0, 0], [5, 6, 0, 0], [5, 6, 0, 0]])
    pred = torch.tensor([[5, 6, 0, 0], [5, 7, 0, 0], [5, 6, 8, 0]])  # right, wrong byte, runs past the end
    assert exact_match(pred, target) == 1 / 3
    assert exact_match(pred[:0], target[:0]) == 0.0


def test_task_scores_score_each_task_present_with_its_metric():
    target = torch.tensor([[0, 1, 0], [0, 0, 0], [1, 4, 0], [1, 5, 0]])
    pred = torch.tensor([[0, 1, 0], [0, 1, 0], [1, 4, 0], [1, 4, 0]])
    scores = task_scores(pred, target, TASKS)
    assert scores == {
        "digits": {"metric": "accuracy", "value": 0.5, "examples": 2},
        "words": {"metric": "exact_match", "value": 0.5, "examples": 2},
    }
    assert list(task_scores(pred[2:], target[2:], TASKS)) == ["words"]


def test_expert_utilisation_shares_and_plot(tmp_path):
    shares = expert_utilisation({"encoder": {"digits": torch.tensor([3, 1, 0]), "words": torch.tensor([0, 0, 0])}})
    assert shares == {"encoder": {"digits": [0.75, 0.25, 0.0], "words": [0.0, 0.0, 0.0]}}
    path = plot_expert_utilisation(shares, tmp_path / "experts.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
