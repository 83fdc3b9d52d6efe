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

    An image becomes linear patch embeddings, a text byte-token embeddings; each gets its own position table, and a
    learned ``[CLS]`` token is prepended. A stream that holds both modalities (MoMo's shared stream) also adds a
    modality-type embedding and runs image, text or the concatenation image + text (a pair) through the same layers;
    a stream that holds one modality (a tower of the dual-stream baseline) holds only that modality's embeddings, so
    its parameter count has nothing it never uses. The pooled output is the final ``[CLS]`` state.

    Args:
        image_shape: (C, H, W) of one image; H and W divisible by ``patch_size``.
        patch_size: side of the square patches.
        dim: model width D.
        depth: number of transformer layers.
        heads: attention heads.
        mlp_ratio: feed-forward width over ``dim``.
        dropout: dropout inside the layers.
        max_text_length: longest text in tokens.
        modalities: the inputs this stream embeds: ``("image", "text")`` (shared), ``("image",)`` or ``("text",)``.
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
        modalities: tuple[str, ...] = ("image", "text"),
    ) -> None:
        super().__init__()
        channels, height, width = image_shape
        if height % patch_size or width % patch_size:
            raise ValueError(f"image size {height}x{width} is not divisible by patch_size {patch_size}")
        if not modalities or set(modalities) - {"image", "text"}:
            raise ValueError(f"modalities must be a non-empty subset of image and text, got {modalities}")
        self.modalities = tuple(m for m in ("image", "text") if m in modalities)
        self.patch_size = patch_size
        self.num_patches = (height // patch_size) * (width // patch_size)
        self.patch_dim = channels * patch_size * patch_size
        # One id past the byte vocabulary is the [MASK] token of masked token modeling.
        self.mask_id = ByteTokenizer.vocab_size
        has_image, has_text = "image" in self.modalities, "text" in self.modalities
        if has_image:
            self.patch_embed = nn.Linear(self.patch_dim, dim)
        if has_text:
            self.token_embed = nn.Embedding(ByteTokenizer.vocab_size + 1, dim, padding_idx=ByteTokenizer.pad_id)
        # Only a stream that sees both modalities needs to tell them apart.
        self.type_embed = nn.Embedding(2, dim) if has_image and has_text else None
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        initial = []
        if has_image:
            self.image_position = nn.Parameter(torch.zeros(self.num_patches, dim))
            self.patch_mask_token = nn.Parameter(torch.zeros(dim))
            initial.append(self.image_position)
        if has_text:
            self.text_position = nn.Parameter(torch.zeros(max_text_length, dim))
            initial.append(self.text_position)
        initial.append(self.cls)
        if has_image:
            initial.append(self.patch_mask_token)
        for p in initial:
            nn.init.normal_(p, std=0.02)
        # BERT/ViT initialise token and type embeddings like the positions, N(0, 0.02). PyTorch's default N(0, 1) made
        # every token (and the modality-type vector added to every position) about 50 times larger than what the
        # layers add to the residual stream, so at depth 2 the tokens barely mixed and the joint [CLS] of a pair
        # carried almost no image-text interaction (issue 6: matching stuck at chance).
        if has_text:
            nn.init.normal_(self.token_embed.weight, std=0.02)
            with torch.no_grad():
                self.token_embed.weight[ByteTokenizer.pad_id].zero_()
        if self.type_embed is not None:
            nn.init.normal_(self.type_embed.weight, std=0.02)
        self.layers = _stack(dim, depth, heads, mlp_ratio, dropout)
        self.norm = nn.LayerNorm(dim)
        self.max_text_length = max_text_length
        self.out_dim = dim

    def _type(self, kind: int) -> Tensor | float:
        return 0.0 if self.type_embed is None else self.type_embed.weight[kind]

    def _embed_image(self, images: Tensor, patch_mask: Tensor | None) -> Tensor:
        x = self.patch_embed(patchify(images, self.patch_size))  # (B, P, D)
        if patch_mask is not None:  # SimMIM: masked patches are replaced by a learned token before the stack
            x = torch.where(patch_mask.unsqueeze(-1), self.patch_mask_token.to(x.dtype), x)
        return x + self.image_position + self._type(IMAGE_TYPE)

    def _embed_text(self, tokens: Tensor) -> Tensor:
        tokens = tokens[:, : self.max_text_length]
        return self.token_embed(tokens) + self.text_position[: tokens.shape[1]] + self._type(TEXT_TYPE)

    def forward(
        self,
        image: Tensor | None = None,
        text: Tensor | None = None,
        lengths: Tensor | None = None,
        patch_mask: Tensor | None = None,
    ) -> Tensor:
        """Runs an image, a text or (shared stream only) an image-text pair through the stack.

        Args:
            image: (B, C, H, W) or None.
            text: (B, L) token ids or None.
            lengths: (B,) valid text lengths (default: all of L).
            patch_mask: (B, P) bool, True where a patch is hidden (masked patch modeling).

        Returns:
            Hidden states (B, 1 + P + L, D): ``[CLS]``, then the image patches (if any), then the text tokens.
        """
        for name, value in (("image", image), ("text", text)):
            if value is not None and name not in self.modalities:
                raise ValueError(f"this stream embeds {' and '.join(self.modalities)} only, not {name}")
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
            parts.append(embedded)
            valid.append(text_valid(lengths, batch, embedded.shape[1], text.device))
        cls = self.cls.expand(batch, -1, -1).to(parts[0].dtype)
        h = torch.cat([cls, *parts], dim=1)
        keep = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=h.device), *valid], dim=1)
        return self.norm(self.layers(h, src_key_padding_mask=~keep))


def _stack(dim: int, depth: int, heads: int, mlp_ratio: float, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        dim, heads, int(dim * mlp_ratio), dropout, activation="gelu", batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


def text_valid(lengths: Tensor | None, batch: int, steps: int, device: torch.device) -> Tensor:
    """(B, L) bool, True at the valid tokens of texts with ``lengths`` (None: all L valid).

    Lengths are clamped to 1 so an absent text (length 0) keeps one key and attention stays finite.
    """
    if lengths is None:
        lengths = torch.full((batch,), steps, device=device)
    return torch.arange(steps, device=device)[None, :] < lengths.clamp(1, steps)[:, None]


class FusionEncoder(nn.Module):
    """FLAVA's multimodal encoder (Singh et al., arXiv 2112.04482, sec. 3.1): a transformer over both towers' states.

    The hidden states of the image tower (``[CLS]`` + patches) and of the text tower (``[CLS]`` + tokens) are each
    linearly projected, concatenated behind a learned ``[CLS_M]`` token and run through their own stack; the pooled
    output is the final ``[CLS_M]`` state. The dual-stream baseline matches image-text pairs with it (and predicts a
    pair's masked tokens from it), as FLAVA does for ITM and masked multimodal modeling.

    Args:
        dim: width of the towers and of this stack.
        depth: its number of transformer layers.
        heads, mlp_ratio, dropout: as for :class:`StreamEncoder`.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        dropout: float,
    ) -> None:
        super().__init__()
        self.image_in = nn.Linear(dim, dim)
        self.text_in = nn.Linear(dim, dim)
        # The fusion's inputs start small, as the streams' embeddings do (N(0, 0.02)): the towers' states are
        # layer-normalised (norm about sqrt(D)), and at PyTorch's default init they would swamp what the fusion layers
        # add, so the joint [CLS_M] would sit longer on the constant-answer plateau of matching.
        for projection in (self.image_in, self.text_in):
            nn.init.normal_(projection.weight, std=0.02)
            nn.init.zeros_(projection.bias)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.cls, std=0.02)
        self.layers = _stack(dim, depth, heads, mlp_ratio, dropout)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, image_states: Tensor, text_states: Tensor, text_valid: Tensor) -> Tensor:
        """(B, 1 + Pi, D) image states and (B, 1 + Lt, D) text states with (B, 1 + Lt) valid mask -> (B, 1 + Pi + Lt, D)
        fused states: ``[CLS_M]``, then the image part, then the text part."""
        batch = image_states.shape[0]
        h = torch.cat([self.cls.expand(batch, -1, -1), self.image_in(image_states), self.text_in(text_states)], dim=1)
        keep = torch.cat(
            [torch.ones(batch, 1 + image_states.shape[1], dtype=torch.bool, device=h.device), text_valid], dim=1
        )
        return self.norm(self.layers(h, src_key_padding_mask=~keep))


class MoMoModel(nn.Module):
    """MoMo's shared single-stream model (arXiv 2304.05523), or the FLAVA-like dual-stream baseline it is compared with.

    With ``text_encoder=None`` one :class:`StreamEncoder` serves images, texts and pairs (MoMo): a pair is the
    concatenation image + text through the same layers. Given a second encoder, images go through ``encoder`` (an
    image-only tower) and texts through ``text_encoder`` (a text-only tower), and a pair goes through ``fusion``, a
    separate multimodal stack over both towers' hidden states (FLAVA, arXiv 2112.04482, the model MoMo is compared
    with): it gives the matching logits and, for masked tokens of a pair, the text states that see the image. A dual
    model without ``fusion`` (``fusion_depth: 0``) matches a pair from the two pooled vectors instead (late
    interaction: ``[a, b, a*b, |a-b|]``) and predicts a pair's masked tokens from the text tower alone.

    The learnable parts of every objective live here, as the style guide asks: the patch and token prediction heads,
    the contrastive projections and temperature, the matching head, and one linear probe per modality that the
    strategy trains on detached features to watch (and select) the representation during training.

    Args:
        encoder: the shared stream (or the image tower of the dual-stream baseline).
        text_encoder: the text tower of the dual-stream baseline; None for the shared single stream.
        num_classes: classes of the online probes.
        projection_dim: size of the contrastive embedding.
        temperature: initial contrastive temperature (CLIP's 0.07).
        fusion: the dual-stream baseline's multimodal stack (None: shared stream, or late interaction).
    """

    def __init__(
        self,
        encoder: StreamEncoder,
        text_encoder: StreamEncoder | None,
        num_classes: int,
        projection_dim: int,
        temperature: float,
        fusion: FusionEncoder | None = None,
    ) -> None:
        super().__init__()
        if fusion is not None and text_encoder is None:
            raise ValueError("a fusion stack needs separate image and text towers (text_encoder)")
        dim = encoder.out_dim
        self.encoder = encoder
        self.text_encoder = text_encoder
        self.fusion = fusion
        self.patch_head = nn.Linear(dim, encoder.patch_dim)
        self.token_head = nn.Linear(dim, ByteTokenizer.vocab_size)
        self.image_projection = nn.Linear(dim, projection_dim)
        self.text_projection = nn.Linear(dim, projection_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.match_head = nn.Linear(4 * dim if self.late_interaction else dim, 2)
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

    @property
    def late_interaction(self) -> bool:
        """True for a dual-stream model without a fusion stack: pairs are matched from the two pooled vectors."""
        return self.text_encoder is not None and self.fusion is None

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

    def encode_pair(self, image: Tensor, text: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Hidden states (B, 1 + P' + L', D) of a stack that sees both the image and the text: ``[CLS]`` (the
        pair's pooled state), the image part, then the text part (its last ``L`` positions are the text tokens).

        The shared stream runs the concatenation; the dual-stream baseline runs its fusion stack over the two towers'
        states (including each tower's ``[CLS]``).
        """
        if self.text_encoder is None:
            return self.encoder(image=image, text=text, lengths=lengths)
        if self.fusion is None:
            raise ValueError("a dual-stream model without a fusion stack has no joint pass (late interaction)")
        image_states = self.stream("image")(image=image)
        text_states = self.stream("text")(text=text, lengths=lengths)
        steps = text_states.shape[1] - 1
        valid = text_valid(lengths, text.shape[0], steps, text.device)
        valid = torch.cat([torch.ones(text.shape[0], 1, dtype=torch.bool, device=text.device), valid], dim=1)
        return self.fusion(image_states, text_states, valid)

    @property
    def contrastive(self) -> bool:
        """MoMo always has image-text contrastive projections (``project``)."""
        return True

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

        With an image the text states come from the joint pass (``encode_pair``); a late-interaction dual model has
        none and ignores ``image``.
        """
        steps = text[:, : self.stream("text").max_text_length].shape[1]
        if image is not None and not self.late_interaction:
            hidden = self.encode_pair(image, text, lengths)[:, -steps:]
        else:
            hidden = self.stream("text")(text=text, lengths=lengths)[:, 1:]
        return self.token_head(hidden)

    def match(self, image: Tensor, text: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Image-text matching logits (B, 2) (index 1: "the caption matches the image")."""
        if not self.late_interaction:
            return self.match_head(self.encode_pair(image, text, lengths)[:, 0])
        f = self.encode({"image": image, "text": text}, {"text": lengths} if lengths is not None else None)
        a, b = f["image"], f["text"]
        return self.match_head(torch.cat([a, b, a * b, (a - b).abs()], dim=-1))
