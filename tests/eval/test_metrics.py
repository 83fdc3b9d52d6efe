"""Metrics against scikit-learn / scipy on seeded random data, and hand-ranked retrieval cases."""

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr
from sklearn import metrics as skm

from polymodal.eval.metrics import (
    accuracy,
    binary_accuracy,
    binary_f1,
    classification_metrics,
    confusion_matrix,
    cross_modal_retrieval,
    macro_f1,
    mae,
    mean_average_precision,
    pearson_r,
    recall_at_k,
    regression_metrics,
    retrieval_metrics,
)


@pytest.fixture
def labels():
    rng = np.random.default_rng(0)
    # Class 4 never occurs and class 3 occurs only in the predictions: exercises the "union of labels" rule.
    target = rng.integers(0, 3, size=40)
    pred = rng.integers(0, 4, size=40)
    return pred, target


def test_accuracy_matches_sklearn(labels):
    pred, target = labels
    assert accuracy(pred, target) == pytest.approx(skm.accuracy_score(target, pred))


def test_accuracy_accepts_tensors(labels):
    pred, target = labels
    assert accuracy(torch.from_numpy(pred), torch.from_numpy(target)) == pytest.approx(accuracy(pred, target))


def test_macro_f1_matches_sklearn(labels):
    pred, target = labels
    expected = skm.f1_score(target, pred, average="macro")
    assert macro_f1(pred, target) == pytest.approx(expected)
    assert macro_f1(torch.from_numpy(pred), torch.from_numpy(target), num_classes=5) == pytest.approx(expected)


def test_macro_f1_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        macro_f1([0, 2], [0, 1], num_classes=2)


def test_confusion_matrix_matches_sklearn(labels):
    pred, target = labels
    cm = confusion_matrix(pred, target, num_classes=5)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(target, pred, labels=range(5)))


def test_confusion_matrix_rows_are_true_classes():
    cm = confusion_matrix(pred=[1, 1], target=[0, 0], num_classes=2)
    np.testing.assert_array_equal(cm, [[0, 2], [0, 0]])


def test_classification_metrics_uses_argmax():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    target = torch.tensor([0, 1, 1, 0])
    out = classification_metrics(logits, target)
    pred = [0, 1, 2, 0]
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["macro_f1"] == pytest.approx(skm.f1_score(target.numpy(), pred, average="macro"))


@pytest.fixture
def scores():
    rng = np.random.default_rng(1)
    target = np.round(rng.uniform(-3, 3, size=50) * 3) / 3  # MOSI-like thirds, several exact zeros
    target[:5] = 0.0
    pred = target + rng.normal(0, 1.0, size=50)
    pred[5] = 0.0  # a zero prediction counts as non-negative in acc2
    return pred, target


def test_mae(scores):
    pred, target = scores
    assert mae(pred, target) == pytest.approx(skm.mean_absolute_error(target, pred))


def test_pearson_matches_scipy(scores):
    pred, target = scores
    assert pearson_r(torch.from_numpy(pred), target) == pytest.approx(pearsonr(pred, target)[0], abs=1e-12)


def test_pearson_is_zero_when_constant():
    assert pearson_r([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]) == 0.0
    assert pearson_r([0.0, 1.0, 2.0], [5.0, 5.0, 5.0]) == 0.0
    assert pearson_r([1.0], [2.0]) == 0.0


def test_binary_accuracy_and_f1_match_mmsa_convention(scores):
    pred, target = scores
    assert binary_accuracy(pred, target, exclude_zero=False) == pytest.approx(
        skm.accuracy_score(target >= 0, pred >= 0)
    )
    assert binary_f1(pred, target, exclude_zero=False) == pytest.approx(
        skm.f1_score(target >= 0, pred >= 0, average="weighted")
    )
    nonzero = target != 0
    assert binary_accuracy(pred, target, exclude_zero=True) == pytest.approx(
        skm.accuracy_score(target[nonzero] > 0, pred[nonzero] > 0)
    )
    assert binary_f1(pred, target, exclude_zero=True) == pytest.approx(
        skm.f1_score(target[nonzero] > 0, pred[nonzero] > 0, average="weighted")
    )


def test_binary_metrics_hand_case():
    # Target 0 counts as positive with zeros kept and is dropped otherwise; prediction 0 is positive / negative.
    pred, target = [0.0, -1.0, 2.0, 0.5], [0.0, 1.0, 1.0, -2.0]
    assert binary_accuracy(pred, target, exclude_zero=False) == pytest.approx(2 / 4)
    assert binary_accuracy(pred, target, exclude_zero=True) == pytest.approx(1 / 3)


def test_regression_metrics(scores):
    pred, target = scores
    out = regression_metrics(torch.from_numpy(pred).unsqueeze(1), torch.from_numpy(target))
    assert set(out) == {"mae", "corr", "acc2", "acc2_nonzero", "f1", "f1_nonzero", "acc7"}
    expected_acc7 = np.mean(np.round(np.clip(pred, -3, 3)) == np.round(np.clip(target, -3, 3)))
    assert out["acc7"] == pytest.approx(expected_acc7)
    assert out["corr"] == pytest.approx(pearsonr(pred, target)[0])
    assert out["f1_nonzero"] == pytest.approx(binary_f1(pred, target, exclude_zero=True))


def test_acc7_clips_before_rounding():
    out = regression_metrics([4.2, -3.6, 0.4], [3.0, -3.0, 1.0])
    assert out["acc7"] == pytest.approx(2 / 3)


# Hand-ranked case: 2 queries x 4 gallery items.
# Query 0 ranks the gallery as [2, 0, 3, 1]; relevant items {0, 1} sit at ranks 2 and 4:
#   AP = (1/2 + 2/4) / 2 = 0.5; R@1 miss, R@2 hit.
# Query 1 ranks the gallery as [1, 3, 0, 2]; relevant item {1} sits at rank 1: AP = 1; R@1 hit.
SIMILARITY = torch.tensor([[0.8, 0.1, 0.9, 0.3], [0.2, 0.9, 0.1, 0.5]])
RELEVANT = torch.tensor([[True, True, False, False], [False, True, False, False]])


def test_recall_at_k_hand_case():
    assert recall_at_k(SIMILARITY, RELEVANT, k=1) == pytest.approx(0.5)
    assert recall_at_k(SIMILARITY, RELEVANT, k=2) == pytest.approx(1.0)
    assert recall_at_k(SIMILARITY, RELEVANT, k=100) == pytest.approx(1.0)


def test_mean_average_precision_hand_case():
    assert mean_average_precision(SIMILARITY, RELEVANT) == pytest.approx((0.5 + 1.0) / 2)


def test_queries_without_relevant_items_are_skipped():
    similarity = torch.cat([SIMILARITY, torch.tensor([[0.1, 0.2, 0.3, 0.4]])])
    relevant = torch.cat([RELEVANT, torch.zeros(1, 4, dtype=torch.bool)])
    assert mean_average_precision(similarity, relevant) == pytest.approx(0.75)
    assert recall_at_k(similarity, relevant, k=1) == pytest.approx(0.5)


def test_paired_retrieval_with_identity():
    similarity = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.7, 0.0], [0.0, 0.1, 0.2]])
    relevant = torch.eye(3, dtype=torch.bool)
    # Query 1's match is ranked second; the others are first.
    assert recall_at_k(similarity, relevant, k=1) == pytest.approx(2 / 3)
    assert mean_average_precision(similarity, relevant) == pytest.approx((1 + 0.5 + 1) / 3)


def test_retrieval_metrics_match_sklearn_average_precision():
    rng = np.random.default_rng(2)
    similarity = rng.normal(size=(6, 12))
    query_labels, gallery_labels = rng.integers(0, 3, size=6), rng.integers(0, 3, size=12)
    out = retrieval_metrics(torch.from_numpy(similarity), query_labels, gallery_labels, ks=(1, 5))
    assert set(out) == {"R@1", "R@5", "mAP"}
    relevant = query_labels[:, None] == gallery_labels[None, :]
    aps = [skm.average_precision_score(r, s) for r, s in zip(relevant, similarity, strict=True) if r.any()]
    assert out["mAP"] == pytest.approx(np.mean(aps))
    top5 = np.argsort(-similarity, axis=1)[:, :5]
    hits = [relevant[q, top5[q]].any() for q in range(6) if relevant[q].any()]
    assert out["R@5"] == pytest.approx(np.mean(hits))


def test_retrieval_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must both have shape"):
        recall_at_k(SIMILARITY, RELEVANT[:, :3], k=1)


def test_cross_modal_retrieval_scores_both_directions_of_each_pair():
    # Two image and three audio embeddings in 2-d; relevance is a shared label.
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    audio = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]])
    out = cross_modal_retrieval(
        {"image": image, "audio": audio}, {"image": [0, 1], "audio": [0, 0, 1]}, [("image", "audio")]
    )
    # image 0 (label 0): best audio is 1 (label 0) -> hit; image 1 (label 1): best is audio 0 (label 0) -> miss.
    assert out["image_to_audio_r1"] == 0.5
    # audio 0 -> image 1 (miss), audio 1 -> image 0 (hit), audio 2 -> image 1 (0.8 > 0.6, hit).
    assert out["audio_to_image_r1"] == pytest.approx(2 / 3)
    # image 1's ranking of audio: 0 (0.8? no: 1.0), 2 (0.8), 1 (0.0) -> its only relevant item (2) at rank 2: AP 1/2.
    # image 0: audio 1 (1.0, relevant), audio 2 (0.6), audio 0 (0.0, relevant) -> AP (1 + 2/3) / 2.
    assert out["image_to_audio_map"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 2)
    assert out["r1"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert set(out) == {
        f"{a}_to_{b}_{k}" for a, b in (("image", "audio"), ("audio", "image")) for k in ("r1", "r5", "r10", "map")
    } | {"r1"}
