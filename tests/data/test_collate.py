import pytest
import torch

from polymodal.data.collate import Collate, move_to, pad_sequences


def _sample(index, image=None, text=None, features=None, target=0):
    return {"inputs": {"image": image, "text": text, "features": features}, "target": target, "index": index}


def test_pad_sequences_hand_case():
    padded, lengths = pad_sequences([torch.tensor([5, 6, 7]), torch.tensor([9])])
    torch.testing.assert_close(padded, torch.tensor([[5, 6, 7], [9, 0, 0]]))
    torch.testing.assert_close(lengths, torch.tensor([3, 1]))


def test_missing_modalities_are_zero_filled_and_marked_absent():
    samples = [
        _sample(0, image=torch.ones(1, 2, 2), text=torch.tensor([3, 4, 5]), features=torch.ones(2, 3), target=1),
        _sample(1, image=None, text=torch.tensor([8]), features=None, target=2),
        _sample(2, image=torch.full((1, 2, 2), 2.0), text=None, features=torch.full((4, 3), 3.0), target=0),
    ]
    batch = Collate()(samples)
    assert batch["inputs"]["image"].shape == (3, 1, 2, 2)
    torch.testing.assert_close(batch["inputs"]["image"][1], torch.zeros(1, 2, 2))
    torch.testing.assert_close(batch["present"]["image"], torch.tensor([True, False, True]))
    # sequences: padded to the longest present one; an absent sequence has length 0 and is all padding
    assert batch["inputs"]["text"].shape == (3, 3) and batch["inputs"]["text"].dtype == torch.long
    torch.testing.assert_close(batch["lengths"]["text"], torch.tensor([3, 1, 0]))
    torch.testing.assert_close(batch["inputs"]["text"][2], torch.zeros(3, dtype=torch.long))
    assert batch["inputs"]["features"].shape == (3, 4, 3)
    torch.testing.assert_close(batch["lengths"]["features"], torch.tensor([2, 0, 4]))
    torch.testing.assert_close(batch["present"]["features"], torch.tensor([True, False, True]))
    torch.testing.assert_close(batch["target"], torch.tensor([1, 2, 0]))
    torch.testing.assert_close(batch["index"], torch.tensor([0, 1, 2]))
    assert "image" not in batch["lengths"]


def test_modality_absent_from_the_whole_batch_uses_the_declared_shape():
    collate = Collate(shapes={"image": (1, 2, 2), "text": ()}, dtypes={"text": torch.long})
    batch = collate([_sample(0, features=torch.ones(1, 3)), _sample(1, features=torch.ones(2, 3))])
    assert batch["inputs"]["image"].shape == (2, 1, 2, 2)
    assert not batch["present"]["image"].any()
    assert batch["inputs"]["text"].dtype == torch.long and batch["inputs"]["text"].shape == (2, 1)
    torch.testing.assert_close(batch["lengths"]["text"], torch.tensor([0, 0]))


def test_modality_absent_everywhere_without_a_shape_is_an_error():
    with pytest.raises(ValueError, match="every sample lacks 'image'"):
        Collate()([_sample(0, features=torch.ones(1, 3))])


def test_move_to_keeps_structure_and_values():
    batch = Collate()([_sample(0, image=torch.ones(1, 2, 2), text=torch.tensor([4]), features=torch.ones(1, 3))])
    moved = move_to({"batch": batch, "pair": (torch.ones(1), 3)}, "cpu")
    torch.testing.assert_close(moved["batch"]["inputs"]["image"], batch["inputs"]["image"])
    assert moved["pair"][1] == 3 and isinstance(moved["pair"], tuple)
