"""Symmetric InfoNCE against a hand-computed two-pair case."""

import math

import torch
from torch.testing import assert_close

from polymodal.objectives import info_nce


def test_info_nce_two_orthogonal_pairs():
    # query = key = identity: logits = scale * I, each row's CE is log(1 + e^-scale) in both directions.
    eye = torch.eye(2)
    assert_close(info_nce(eye, eye, torch.tensor(1.0)), torch.tensor(math.log(1 + math.exp(-1.0))))
    assert_close(info_nce(eye, eye, torch.tensor(2.0)), torch.tensor(math.log(1 + math.exp(-2.0))))


def test_info_nce_is_asymmetric_inputs_averaged_over_both_directions():
    query = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    key = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # logits [[1, 0], [1, 0]]. Rows (query->key): -log(e/(e+1)) and -log(1/(e+1)).
    # Columns (key->query): column 0 is [1, 1] -> log 2; column 1 is [0, 0] -> log 2.
    rows = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.e)) / 2
    expected = 0.5 * (rows + math.log(2.0))
    assert_close(info_nce(query, key, torch.tensor(1.0)), torch.tensor(expected))


def test_info_nce_excluded_negatives_do_not_count():
    eye = torch.eye(2)
    exclude = torch.ones(2, 2, dtype=torch.bool)  # every off-diagonal pair is a known match; the diagonal stays
    assert_close(info_nce(eye, eye, torch.tensor(1.0), exclude), torch.tensor(0.0))


def test_info_nce_gradient_reaches_the_temperature():
    scale = torch.tensor(1.0, requires_grad=True)
    info_nce(torch.eye(2), torch.eye(2), scale).backward()
    assert scale.grad is not None and scale.grad < 0  # a sharper softmax lowers the loss of correct pairs
