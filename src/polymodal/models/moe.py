"""Sparsely-gated mixture-of-experts layer with noisy top-k gating (Shazeer et al. 2017, arXiv 1701.06538)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def noisy_top_k_load(clean: Tensor, noisy: Tensor, noise_std: Tensor, k: int) -> Tensor:
    """Smooth per-expert load: the summed probability that each expert is in a token's top k under fresh noise.

    Shazeer et al. 2017, section 4 / appendix A, eq. 8-10: ``P(x, i) = Phi((clean_i - kth_excluding(noisy, k, i)) /
    noise_std_i)``. The k-th largest of the *other* experts' noisy logits is the (k+1)-th largest overall when expert
    ``i`` is itself in the top k, and the k-th largest otherwise.

    Args:
        clean: (N, E) gate logits without noise.
        noisy: (N, E) the noisy logits that picked the top k.
        noise_std: (N, E) the noise scale (positive).
        k: experts per token; needs ``k < E``.

    Returns:
        (E,) expected number of tokens per expert.
    """
    top = noisy.topk(k + 1, dim=-1).values  # (N, k+1)
    threshold_if_in = top[:, k : k + 1]
    threshold_if_out = top[:, k - 1 : k]
    normal = torch.distributions.Normal(clean.new_zeros(()), clean.new_ones(()))
    prob_if_in = normal.cdf((clean - threshold_if_in) / noise_std)
    prob_if_out = normal.cdf((clean - threshold_if_out) / noise_std)
    return torch.where(noisy > threshold_if_in, prob_if_in, prob_if_out).sum(0)


class MixtureOfExperts(nn.Module):
    """Token-wise sparsely-gated MoE of feed-forward experts.

    ``G(x) = Softmax(KeepTopK(H(x), k))`` with ``H(x) = x W_g + N(0, 1) * Softplus(x W_noise)`` during training
    (eq. 3-5 of arXiv 1701.06538); at evaluation the noise is off. Each token is sent only to its ``k`` experts, and
    the output is the gate-weighted sum of their outputs, added to the input (residual) after layer norm.

    A forward pass records the batch's ``importance`` (E,) (sum of gates per expert, eq. 6) and ``load`` (E,) (smooth
    load estimate of eq. 10 in training with noise, else the count of tokens routed to each expert), from which the
    strategy computes the balancing loss (``objectives.load_balancing_loss``), and ``routed`` (N, E) booleans
    (which experts each token used), which the utilisation report reads. They are statistics, not losses.

    Args:
        dim: token width D.
        num_experts: number of experts E.
        k: experts per token (``1 <= k <= E``; noisy load needs ``k < E``).
        hidden_dim: width of each expert's hidden layer.
        noisy: whether training adds the learned gating noise.
    """

    def __init__(self, dim: int, num_experts: int, k: int, hidden_dim: int, noisy: bool = True) -> None:
        super().__init__()
        if not 1 <= k <= num_experts:
            raise ValueError(f"need 1 <= k <= num_experts, got k={k}, num_experts={num_experts}")
        self.num_experts, self.k, self.noisy = num_experts, k, noisy
        self.norm = nn.LayerNorm(dim)
        # Zero-initialised gates start every expert equally likely (as in the paper's appendix A).
        self.gate = nn.Linear(dim, num_experts, bias=False)
        self.noise = nn.Linear(dim, num_experts, bias=False)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.noise.weight)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, dim)) for _ in range(num_experts)
        )
        self.importance: Tensor | None = None
        self.load: Tensor | None = None
        self.routed: Tensor | None = None

    def gates(self, x: Tensor) -> Tensor:
        """Sparse gates (N, E) of tokens (N, D): k non-zeros per row summing to 1; records importance and load."""
        clean = self.gate(x)
        if self.noisy and self.training:
            noise_std = F.softplus(self.noise(x)) + 1e-2
            logits = clean + torch.randn_like(clean) * noise_std
        else:
            logits = clean
        top_values, top_index = logits.topk(self.k, dim=-1)
        gates = torch.zeros_like(logits).scatter(-1, top_index, top_values.softmax(-1))
        self.importance = gates.sum(0)
        if self.noisy and self.training and self.k < self.num_experts:
            self.load = noisy_top_k_load(clean, logits, noise_std, self.k)
        else:
            self.load = (gates > 0).sum(0).to(gates.dtype)
        self.routed = (gates > 0).detach()
        return gates

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Args: x (B, T, D); mask (B, T), True for real tokens (padding is neither routed nor counted).

        Returns: (B, T, D).
        """
        tokens = self.norm(x)[mask] if mask is not None else self.norm(x).reshape(-1, x.shape[-1])
        gates = self.gates(tokens)
        out = torch.zeros_like(tokens)
        # Sparse dispatch: each expert runs only on the tokens routed to it, so unchosen experts get no gradient.
        for e, expert in enumerate(self.experts):
            rows = gates[:, e].nonzero(as_tuple=True)[0]
            if rows.numel():
                out = out.index_add(0, rows, gates[rows, e, None] * expert(tokens[rows]))
        if mask is not None:
            return x.masked_scatter(mask.unsqueeze(-1), (x[mask] + out).to(x.dtype))
        return x + out.reshape(x.shape)
