"""OWM projection (MLA's shared-head gradient projection) against hand-computed cases."""

import torch

from polymodal.objectives import project_gradient, update_projector


def test_update_from_identity_matches_hand_computation():
    # P = I, x = (1, 0), alpha = 1: Px = (1, 0), k = (1, 0) / (1 + 1), P - k (Px)^T = diag(1 - 1/2, 1).
    projector = update_projector(torch.eye(2), torch.tensor([1.0, 0.0]), alpha=1.0)
    torch.testing.assert_close(projector, torch.tensor([[0.5, 0.0], [0.0, 1.0]]))


def test_second_update_hand_computation():
    # From P = diag(0.5, 1) with x = (1, 1), alpha = 1: Px = (0.5, 1), x^T P x = 1.5, k = (0.5, 1) / 2.5 = (0.2, 0.4);
    # k (Px)^T = [[0.1, 0.2], [0.2, 0.4]], so P = [[0.4, -0.2], [-0.2, 0.6]].
    projector = update_projector(torch.tensor([[0.5, 0.0], [0.0, 1.0]]), torch.tensor([1.0, 1.0]), alpha=1.0)
    torch.testing.assert_close(projector, torch.tensor([[0.4, -0.2], [-0.2, 0.6]]))


def test_projected_gradient_is_orthogonal_to_stored_directions():
    features = [torch.tensor([1.0, 2.0, 0.0, -1.0]), torch.tensor([0.0, 1.0, 1.0, 3.0])]
    projector = torch.eye(4)
    for x in features:
        projector = update_projector(projector, x, alpha=1e-6)
    grad = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.3, 0.1, -1.0, 2.0]])
    projected = project_gradient(grad, projector)
    # Updating W by the projected gradient leaves W x unchanged on every stored x (within alpha's tolerance) ...
    for x in features:
        torch.testing.assert_close(projected @ x, torch.zeros(2), atol=1e-4, rtol=0)
    # ... while a direction orthogonal to both keeps its gradient: (2, -1, 1, 0) is orthogonal to both features.
    free = torch.tensor([2.0, -1.0, 1.0, 0.0])
    torch.testing.assert_close(projected @ free, grad @ free, atol=1e-4, rtol=0)


def test_identity_projector_leaves_gradient_unchanged():
    grad = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    torch.testing.assert_close(project_gradient(grad, torch.eye(2)), grad)
