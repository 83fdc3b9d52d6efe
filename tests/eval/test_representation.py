"""Frozen-feature evaluation: linear probe, mismatched pairs and the whole report on hand-made embeddings."""

import torch

from polymodal.eval.representation import linear_probe, mismatched_order, representation_report


def test_linear_probe_separates_separable_features_and_not_noise():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 4
    centres = torch.eye(4) * 5
    features = centres[labels] + 0.1 * torch.randn(40, 4, generator=g)
    assert linear_probe(features[:20], labels[:20], features[20:], labels[20:]) == 1.0
    noise = torch.randn(40, 4, generator=g)
    assert linear_probe(noise[:20], labels[:20], noise[20:], labels[20:]) < 0.75


def test_mismatched_order_takes_the_next_sample_of_another_target():
    assert mismatched_order(torch.tensor([0, 0, 1, 2])).tolist() == [2, 2, 3, 0]
    assert mismatched_order(torch.tensor([3, 3])).tolist() == [0, 1]  # no other target: itself


def test_report_on_an_oracle_and_on_a_constant_model():
    targets = torch.arange(12) % 3
    batches = [{"inputs": {"x": targets[i : i + 6]}, "target": targets[i : i + 6]} for i in (0, 6)]

    def oracle_embed(batch):
        onehot = torch.nn.functional.one_hot(batch["inputs"]["x"], 3).float()
        return {"image": onehot, "text": onehot, "image_projected": onehot, "text_projected": onehot}

    def oracle_match(batch, order):
        same = batch["inputs"]["x"] == batch["inputs"]["x"][order]
        return torch.stack([(~same).float(), same.float()], dim=1)

    report = representation_report(oracle_embed, oracle_match, batches, batches)
    assert report["image_probe_acc"] == report["text_probe_acc"] == 1.0
    assert report["i2t_r1"] == report["t2i_r1"] == report["itm_acc"] == 1.0

    def constant_match(batch, order):
        return torch.tensor([[0.0, 1.0]]).expand(len(order), 2)  # always "matches"

    report = representation_report(oracle_embed, constant_match, batches, batches)
    assert report["itm_acc"] == 0.5  # one positive and one negative per image
