"""Sparsely-gated mixture of experts: top-k routing, the smooth load estimate and sparse gradients."""

import math

import pytest
import torch

from polymodal.models.moe import MixtureOfExperts, noisy_top_k_load


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _moe(k: int = 2) -> MixtureOfExperts:
    moe = MixtureOfExperts(dim=8, num_experts=4, k=k, hidden_dim=8)
    torch.nn.init.normal_(moe.gate.weight)  # the zero init would leave the routing to noise alone
    return moe


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_every_token_goes_to_exactly_k_experts(training, k):
    moe = _moe(k).train(training)
    gates = moe.gates(torch.randn(6, 8))
    assert ((gates > 0).sum(1) == k).all()
    torch.testing.assert_close(gates.sum(1), torch.ones(6), rtol=0, atol=1e-6)
    assert torch.equal(moe.routed, gates > 0)
    torch.testing.assert_close(moe.importance, gates.sum(0))


def test_eval_routing_is_the_top_k_of_the_clean_logits():
    moe = _moe(2).eval()
    x = torch.randn(5, 8)
    expected = moe.gate(x).topk(2, dim=-1).indices.sort(-1).values
    chosen = moe.gates(x).nonzero()[:, 1].reshape(5, 2)
    assert torch.equal(chosen, expected)
    assert torch.equal(moe.load, (moe.gates(x) > 0).sum(0).float())


def test_load_matches_a_hand_computed_case():
    clean = torch.tensor([[0.0, 1.0, 2.0]])
    noisy = torch.tensor([[0.5, 1.0, 3.0]])
    # k=1: expert 2 is chosen; its threshold is the best other noisy logit (1.0), the others' is the chosen one (3.0).
    load = noisy_top_k_load(clean, noisy, torch.ones(1, 3), k=1)
    torch.testing.assert_close(load, torch.tensor([_phi(-3.0), _phi(-2.0), _phi(1.0)]), rtol=0, atol=1e-6)


def test_gradients_reach_only_the_selected_experts():
    moe = _moe(2).eval()
    x = torch.randn(1, 1, 8)
    moe(x).sum().backward()
    chosen = moe.routed[0].nonzero().flatten().tolist()
    assert len(chosen) == 2
    for e, expert in enumerate(moe.experts):
        grads = [p.grad for p in expert.parameters()]
        if e in chosen:
            assert all(g is not None and g.abs().sum() > 0 for g in grads)
        else:
            assert all(g is None for g in grads)
    # With k >= 2 the renormalised top-k softmax passes gradient to the gate (with k = 1 it would be constant 1).
    assert moe.gate.weight.grad.abs().sum() > 0


def test_padding_tokens_pass_through_unrouted():
    moe = _moe(2).eval()
    x = torch.randn(2, 3, 8)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    out = moe(x, mask)
    assert moe.routed.shape == (3, 4)
    torch.testing.assert_close(out[~mask], x[~mask])
    assert not torch.allclose(out[mask], x[mask])
