"""Ex-MCR memory aggregation and dense alignment loss against hand-computed cases."""

import math

import torch
from torch.testing import assert_close

from polymodal.objectives import aggregate, dense_alignment_loss


def test_aggregate_is_a_softmax_weighted_sum_of_the_keys():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    keys = torch.eye(2)
    # Scores [[1, 0], [0, 1]] at tau = 1: weights e/(e+1) on the matching key and 1/(e+1) on the other.
    big, small = math.e / (math.e + 1), 1 / (math.e + 1)
    assert_close(aggregate(query, keys, 1.0), torch.tensor([[big, small], [small, big]]))
    # tau = 0.5 doubles the scores: weights e^2/(e^2+1) and 1/(e^2+1).
    sharp = math.exp(2) / (math.exp(2) + 1)
    assert_close(aggregate(query[:1], keys, 0.5), torch.tensor([[sharp, 1 - sharp]]))


def test_aggregate_takes_weights_from_the_keys_and_sums_the_values():
    query = torch.tensor([[1.0, 0.0]])
    values = torch.tensor([[2.0, 0.0, 0.0], [0.0, 4.0, 0.0]])  # another space, another width
    big, small = math.e / (math.e + 1), 1 / (math.e + 1)
    assert_close(aggregate(query, torch.eye(2), 1.0, values), torch.tensor([[2 * big, 4 * small, 0.0]]))


def test_aggregate_at_a_small_temperature_retrieves_the_nearest_key():
    query = torch.tensor([[0.6, 0.8]])
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert_close(aggregate(query, keys, 1e-3), torch.tensor([[0.0, 1.0]]))


def test_dense_alignment_sums_every_leaf_base_pair():
    eye = torch.eye(2)
    one_pair = math.log(1 + math.exp(-1.0))  # info_nce(I, I, scale=1), see test_contrastive.py
    loss = dense_alignment_loss({"audio": eye}, {"image": eye, "text": eye}, torch.tensor(1.0))
    assert_close(loss, torch.tensor(2 * one_pair))
    weighted = dense_alignment_loss(
        {"audio": eye}, {"image": eye, "text": eye}, torch.tensor(1.0), weights={("audio", "text"): 0.5}
    )
    assert_close(weighted, torch.tensor(1.5 * one_pair))


def test_dense_alignment_adds_the_weighted_intra_space_term():
    eye = torch.eye(2)
    one_pair = math.log(1 + math.exp(-1.0))
    intra = {"audio": eye, "text": eye}
    loss = dense_alignment_loss({"audio": eye}, {"image": eye}, torch.tensor(1.0), intra=intra, intra_weight=2.0)
    assert_close(loss, torch.tensor(3 * one_pair))
    # One leaf modality alone has no intra-space pair.
    alone = dense_alignment_loss({"audio": eye}, {"image": eye}, torch.tensor(1.0), intra={"audio": eye})
    assert_close(alone, torch.tensor(one_pair))
