"""Single-stream transformer over image patches and text tokens, and the MoMo model assembled from it."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from polymodal.modalities.text import ByteTokenizer

IMAGE_TYPE, TEXT_TYPE = 0, 1


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """(B, C, H, W) -> (B, P, C * patch_size**2) non-overlapping patches in row-major order."""
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


class StreamEncoder(nn.Module):
    """Modality input embeddings + modality-type embeddings feeding one transformer stack (MoMo, arXiv 2304.05523).

    An image becomes linear patch embeddings, a text byte-token embeddings; each gets its own position table and a
    type embedding, and a learned ``[CLS]`` token is prepended. Image, text or the concatenation image + text (a
    pair) run through the same layers; the pooled output is the final ``[CLS]`` state.

    Args:
        image_shape: (C, H, W) of one image; H and W divisible by ``patch_size``.
        patch_size: side of the square patches.
        dim: model width D.
        depth: number of transformer layers.
        heads: attention heads.
        mlp_ratio: feed-forward width over ``dim``.
        dropout: dropout inside the layers.
        max_text_length: longest text in tokens.
    """

    def __init__(
        self,
        image_shape: tuple[int, ...],
        patch_size: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        dropout: float,
        max_text_length: int,
    ) -> None:
        super().__init__()
        channels, height, width = image_shape
        if height % patch_size or width % patch_size:
            raise ValueError(f"image size {height}x{width} is not divisible by patch_size {patch_size}")
        self.patch_size = patch_size
        self.num_patches = (height // patch_size) * (width // patch_size)
        self.patch_dim = channels * patch_size * patch_size
        # One id past the byte vocabulary is the [MASK] token of masked token modeling.
        self.mask_id = ByteTokenizer.vocab_size
        self.patch_embed = nn.Linear(self.patch_dim, dim)
        self.token_embed = nn.Embedding(ByteTokenizer.vocab_size + 1, dim, padding_idx=ByteTokenizer.pad_id)
        self.image_position = nn.Parameter(torch.zeros(self.num_patches, dim))
        self.text_position = nn.Parameter(torch.zeros(max_text_length, dim))
        self.type_embed = nn.Embedding(2, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.patch_mask_token = nn.Parameter(torch.zeros(dim))
        for p in (self.image_position, self.text_position, self.cls, self.patch_mask_token):
            nn.init.normal_(p, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, int(dim * mlp_ratio), dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.max_text_length = max_text_length
        self.out_dim = dim

    def _embed_image(self, images: Tensor, patch_mask: Tensor | None) -> Tensor:
        x = self.patch_embed(patchify(images, self.patch_size))  # (B, P, D)
        if patch_mask is not None:  # SimMIM: masked patches are replaced by a learned token before the stack
            x = torch.where(patch_mask.unsqueeze(-1), self.patch_mask_token.to(x.dtype), x)
        return x + self.image_position + self.type_embed.weight[IMAGE_TYPE]

    def _embed_text(self, tokens: Tensor) -> Tensor:
        tokens = tokens[:, : self.max_text_length]
        return self.token_embed(tokens) + self.text_position[: tokens.shape[1]] + self.type_embed.weight[TEXT_TYPE]

    def forward(
        self,
        image: Tensor | None = None,
        text: Tensor | None = None,
        lengths: Tensor | None = None,
        patch_mask: Tensor | None = None,
    ) -> Tensor:
        """Runs an image, a text or an image-text pair through the shared stack.

        Args:
            image: (B, C, H, W) or None.
            text: (B, L) token ids or None.
            lengths: (B,) valid text lengths (default: all of L).
            patch_mask: (B, P) bool, True where a patch is hidden (masked patch modeling).

        Returns:
            Hidden states (B, 1 + P + L, D): ``[CLS]``, then the image patches (if any), then the text tokens.
        """
        parts, valid = [], []
        reference = image if image is not None else text
        if reference is None:
            raise ValueError("StreamEncoder needs an image, a text or both")
        batch = reference.shape[0]
        if image is not None:
            parts.append(self._embed_image(image, patch_mask))
            valid.append(torch.ones(batch, self.num_patches, dtype=torch.bool, device=image.device))
        if text is not None:
            embedded = self._embed_text(text)
            steps = embedded.shape[1]
            if lengths is None:
                lengths = torch.full((batch,), steps, device=text.device)
            parts.append(embedded)
            # Clamp to 1 so an absent text (length 0) keeps one key and attention stays finite.
            valid.append(torch.arange(steps, device=text.device)[None, :] < lengths.clamp(1, steps)[:, None])
        cls = self.cls.expand(batch, -1, -1).to(parts[0].dtype)
        h = torch.cat([cls, *parts], dim=1)
        keep = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=h.device), *valid], dim=1)
        return self.norm(self.layers(h, src_key_padding_mask=~keep))


class MoMoModel(nn.Module):
    """MoMo's shared single-stream model (arXiv 2304.05523), or the dual-stream baseline it is compared with.

    With ``text_encoder=None`` one :class:`StreamEncoder` serves images, texts and pairs (MoMo). Given a second
    encoder, images go through ``encoder`` and texts through ``text_encoder`` (dual stream, as FLAVA's separate
    towers); a pair is then matched from the two pooled vectors (late interaction), since no stack sees both.

    The learnable parts of every objective live here, as the style guide asks: the patch and token prediction heads,
    the contrastive projections and temperature, the matching head, and one linear probe per modality that the
    strategy trains on detached features to watch (and select) the representation during training.

    Args:
        encoder: the shared stream (or the image tower of the dual-stream baseline).
        text_encoder: the text tower of the dual-stream baseline; None for the shared single stream.
        num_classes: classes of the online probes.
        projection_dim: size of the contrastive embedding.
        temperature: initial contrastive temperature (CLIP's 0.07).
    """

    def __init__(
        self,
        encoder: StreamEncoder,
        text_encoder: StreamEncoder | None,
        num_classes: int,
        projection_dim: int,
        temperature: float,
    ) -> None:
        super().__init__()
        dim = encoder.out_dim
        self.encoder = encoder
        self.text_encoder = text_encoder
        self.patch_head = nn.Linear(dim, encoder.patch_dim)
        self.token_head = nn.Linear(dim, ByteTokenizer.vocab_size)
        self.image_projection = nn.Linear(dim, projection_dim)
        self.text_projection = nn.Linear(dim, projection_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.match_head = nn.Linear(dim if text_encoder is None else 4 * dim, 2)
        # MAE's linear probe (arXiv 2111.06377, appendix A.2): a BatchNorm without affine parameters before the
        # linear layer, because pooled features of a masked-modeling encoder can differ by very little across inputs.
        self.probes = nn.ModuleDict(
            {
                m: nn.Sequential(nn.BatchNorm1d(dim, affine=False), nn.Linear(dim, num_classes))
                for m in ("image", "text")
            }
        )

    @property
    def modalities(self) -> list[str]:
        return ["image", "text"]

    def stream(self, modality: str) -> StreamEncoder:
        """The stack that encodes ``modality`` alone."""
        return self.encoder if modality == "image" or self.text_encoder is None else self.text_encoder

    def encode(self, inputs: Mapping[str, Tensor], lengths: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Pooled (B, D) feature of each of ``image`` and ``text`` in ``inputs``, each encoded alone."""
        lengths = lengths or {}
        out = {}
        if "image" in inputs:
            out["image"] = self.stream("image")(image=inputs["image"])[:, 0]
        if "text" in inputs:
            out["text"] = self.stream("text")(text=inputs["text"], lengths=lengths.get("text"))[:, 0]
        return out

    def project(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """L2-normalised contrastive embeddings (B, projection_dim) of pooled image/text features."""
        heads = {"image": self.image_projection, "text": self.text_projection}
        return {m: nn.functional.normalize(heads[m](f), dim=-1) for m, f in features.items()}

    def reconstruct_patches(self, image: Tensor, patch_mask: Tensor) -> Tensor:
        """Predicted pixels (B, P, C * patch_size**2) of (B, C, H, W) images whose (B, P) masked patches are hidden."""
        hidden = self.encoder(image=image, patch_mask=patch_mask)
        return self.patch_head(hidden[:, 1 : 1 + self.encoder.num_patches])

    def predict_tokens(self, text: Tensor, lengths: Tensor | None = None, image: Tensor | None = None) -> Tensor:
        """Token logits (B, L, V) at every position of (B, L) token ids, seeing the paired image when given.

        Only the shared stream can attend from text to image; the dual-stream text tower ignores ``image``.
        """
        if image is not None and self.text_encoder is None:
            hidden = self.encoder(image=image, text=text, lengths=lengths)[:, 1 + self.encoder.num_patches :]
        else:
            hidden = self.stream("text")(text=text, lengths=lengths)[:, 1:]
        return self.token_head(hidden)

    def match(self, image: Tensor, text: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Image-text matching logits (B, 2) (index 1: "the caption matches the image")."""
        if self.text_encoder is None:
            return self.match_head(self.encoder(image=image, text=text, lengths=lengths)[:, 0])
        f = self.encode({"image": image, "text": text}, {"text": lengths} if lengths is not None else None)
        a, b = f["image"], f["text"]
        return self.match_head(torch.cat([a, b, a * b, (a - b).abs()], dim=-1))
