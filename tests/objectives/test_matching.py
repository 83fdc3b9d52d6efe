"""Hard-negative sampling for image-text matching."""

import torch

from polymodal.objectives import hard_negatives


def test_hard_negatives_never_draw_the_pair_and_follow_similarity():
    similarity = torch.tensor([[0.0, 50.0, -50.0], [50.0, 0.0, -50.0], [-50.0, 50.0, 0.0]])
    for _ in range(5):
        assert hard_negatives(similarity).tolist() == [1, 0, 1]


def test_hard_negatives_respect_exclusions_and_fall_back_to_self():
    similarity = torch.zeros(3, 3)
    exclude = torch.tensor([[False, True, False], [True, False, True], [False, False, False]])
    drawn = hard_negatives(similarity, exclude)
    assert drawn[0] == 2  # column 1 excluded, diagonal never drawn
    assert drawn[1] == 1  # nothing allowed: its own index
    assert drawn[2] in (0, 1)
