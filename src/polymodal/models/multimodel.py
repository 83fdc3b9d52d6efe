"""MultiModel: modality nets around one shared body of convolutions, attention and experts (arXiv 1706.05137).

Every task runs through the same body: an input modality net maps the input to a (B, S, D) sequence, the encoder
refines it, the I/O mixer and the autoregressive decoder read it, and an output modality net maps the decoder state
back out. The decoder always starts from a task token (the paper's "To-English"-style command token, section 2.3):
a classification task reads its class logits at that first position, a text task continues byte by byte.

Scaled down from the paper (section 2) for CPU: one separable-convolution block per stage instead of four to six,
one mixture-of-experts layer in the encoder and one in the decoder, byte-level text instead of subwords.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polymodal.modalities.text import ByteTokenizer
from polymodal.models.blocks import AttentionBlock, SeparableConvBlock, timing_signal
from polymodal.models.moe import MixtureOfExperts


class ImageNet(nn.Module):
    """Image modality net: a strided conv stem, (B, C, H, W) -> (B, H/4 * W/4, D) position tokens."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels, dim // 2, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(dim // 2, dim, 3, stride=2, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.stem(x).flatten(2).transpose(1, 2)


class AudioNet(nn.Module):
    """Audio modality net: a strided conv stem over the log-mel spectrogram, (B, 1, F, T) -> (B, T/4, D) frames."""

    def __init__(self, n_mels: int, dim: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, dim // 2, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(dim // 2, dim // 2, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.project = nn.Linear(dim // 2 * ((n_mels + 3) // 4), dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)  # (B, D/2, F/4, T/4)
        return self.project(h.flatten(1, 2).transpose(1, 2))


class MultiModel(nn.Module):
    """The assembled MultiModel.

    Args:
        image_channels: image channels (``None``: no image modality net).
        n_mels: mel bands of the audio input (``None``: no audio modality net).
        num_classes: size of the class output net (all classification tasks' classes, each task owning a range).
        max_tasks: size of the task-token table.
        dim: body width D.
        heads: attention heads.
        num_experts: experts per mixture-of-experts layer.
        k: experts per token.
        expert_hidden: hidden width of an expert.
        use_moe: whether the body has its two MoE layers.
        use_attention: whether the body has attention; without it the mixer adds the mean of the encoded input to
            every decoder position instead of attending to it (a fixed-context seq2seq).
        dropout: dropout in the body's blocks.
    """

    def __init__(
        self,
        image_channels: int | None,
        n_mels: int | None,
        num_classes: int,
        max_tasks: int,
        dim: int,
        heads: int,
        num_experts: int,
        k: int,
        expert_hidden: int,
        use_moe: bool,
        use_attention: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.dim, self.use_attention = dim, use_attention
        nets: dict[str, nn.Module] = {}
        if image_channels is not None:
            nets["image"] = ImageNet(image_channels, dim)
        if n_mels is not None:
            nets["audio"] = AudioNet(n_mels, dim)
        # The text net is shared by input and output: token embedding in, its own projection out (section 2.2).
        self.embed = nn.Embedding(ByteTokenizer.vocab_size, dim, padding_idx=ByteTokenizer.pad_id)
        self.input_nets = nn.ModuleDict(nets)
        self.modalities = [*nets, "text"]
        self.task_embed = nn.Embedding(max_tasks, dim)

        def moe() -> MixtureOfExperts | None:
            return MixtureOfExperts(dim, num_experts, k, expert_hidden) if use_moe else None

        def attention() -> AttentionBlock | None:
            return AttentionBlock(dim, heads, dropout) if use_attention else None

        # Encoder: conv, experts, dilated conv, self-attention.
        self.encoder_conv = nn.ModuleList([SeparableConvBlock(dim, dropout=dropout), SeparableConvBlock(dim, 3, 2)])
        self.encoder_moe = moe()
        self.encoder_attention = attention()
        # I/O mixer: attends from the shifted outputs to the encoded input, then a causal conv.
        self.mixer_attention = attention()
        self.mixer_conv = SeparableConvBlock(dim, causal=True, dropout=dropout)
        # Decoder: causal conv, causal self-attention, attention to the input, experts, dilated causal conv.
        self.decoder_conv = nn.ModuleList(
            [SeparableConvBlock(dim, causal=True, dropout=dropout), SeparableConvBlock(dim, 3, 2, causal=True)]
        )
        self.decoder_self_attention = attention()
        self.decoder_attention = attention()
        self.decoder_moe = moe()
        self.out_norm = nn.LayerNorm(dim)
        self.class_out = nn.Linear(dim, num_classes)
        self.token_out = nn.Linear(dim, ByteTokenizer.vocab_size)

    def moe_layers(self) -> dict[str, MixtureOfExperts]:
        """The body's MoE layers by name (empty without MoE)."""
        layers = {"encoder": self.encoder_moe, "decoder": self.decoder_moe}
        return {name: layer for name, layer in layers.items() if layer is not None}

    def encode(self, modality: str, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Input modality net and encoder.

        Args:
            modality: ``image`` (B, C, H, W), ``audio`` (B, 1, F, T) or ``text`` (B, L) token ids.
            x: the batch of that modality.
            lengths: (B,) token counts for text.

        Returns:
            Encoded input (B, S, D) and its mask (B, S), True for real positions.
        """
        if modality == "text":
            h = self.embed(x)
            positions = torch.arange(x.shape[1], device=x.device)
            mask = positions[None] < lengths[:, None] if lengths is not None else x != ByteTokenizer.pad_id
        else:
            h = self.input_nets[modality](x)
            mask = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
        h = h + timing_signal(h.shape[1], self.dim, h.device)
        h = self.encoder_conv[0](h, mask)
        if self.encoder_moe is not None:
            h = self.encoder_moe(h, mask)
        h = self.encoder_conv[1](h, mask)
        if self.encoder_attention is not None:
            h = self.encoder_attention(h, memory_mask=mask)
        return h, mask

    def decode(self, memory: Tensor, memory_mask: Tensor, task: Tensor, tokens: Tensor | None = None) -> Tensor:
        """I/O mixer and decoder over ``[task token, tokens...]``.

        Args:
            memory: (B, S, D) encoded input; memory_mask: (B, S).
            task: (B,) task ids.
            tokens: (B, L) previous output bytes (None: the task token alone, for class outputs).

        Returns:
            Decoder states (B, 1 + L, D); position t predicts output t.
        """
        h = self.task_embed(task).unsqueeze(1)
        if tokens is not None and tokens.shape[1]:
            h = torch.cat([h, self.embed(tokens)], dim=1)
        h = h + timing_signal(h.shape[1], self.dim, h.device)
        if self.mixer_attention is not None:
            h = self.mixer_attention(h, memory, memory_mask)
        else:
            weights = memory_mask.unsqueeze(-1).to(memory.dtype)
            h = h + ((memory * weights).sum(1) / weights.sum(1).clamp(min=1)).unsqueeze(1)
        h = self.mixer_conv(h)
        h = self.decoder_conv[0](h)
        if self.decoder_self_attention is not None:
            h = self.decoder_self_attention(h, causal=True)
        if self.decoder_attention is not None:
            h = self.decoder_attention(h, memory, memory_mask)
        if self.decoder_moe is not None:
            h = self.decoder_moe(h)
        return self.out_norm(self.decoder_conv[1](h))

    def forward(
        self, modality: str, x: Tensor, lengths: Tensor | None, task: Tensor, tokens: Tensor | None = None
    ) -> Tensor:
        """Encode then decode: (B, 1 + L, D) decoder states (see :meth:`encode`, :meth:`decode`)."""
        memory, mask = self.encode(modality, x, lengths)
        return self.decode(memory, mask, task, tokens)

    def class_logits(self, states: Tensor) -> Tensor:
        """Class output net: (B, 1 + L, D) decoder states -> (B, num_classes) logits at the task position."""
        return self.class_out(states[:, 0])

    def token_logits(self, states: Tensor) -> Tensor:
        """Text output net: (B, T, D) -> (B, T, vocab) next-byte logits."""
        return self.token_out(states)

    @torch.no_grad()
    def generate(self, modality: str, x: Tensor, lengths: Tensor | None, task: Tensor, max_length: int) -> Tensor:
        """Greedy byte decoding until every row has emitted the end (pad) byte or ``max_length`` bytes.

        Returns:
            (B, max_length) byte ids, 0 after each row's end.
        """
        memory, mask = self.encode(modality, x, lengths)
        tokens = torch.zeros(x.shape[0], 0, dtype=torch.long, device=memory.device)
        done = torch.zeros(x.shape[0], dtype=torch.bool, device=memory.device)
        for _ in range(max_length):
            # Recomputing the whole prefix each step keeps the body free of caches; outputs are a few dozen bytes.
            next_token = self.token_logits(self.decode(memory, mask, task, tokens)[:, -1]).argmax(-1)
            next_token = next_token.masked_fill(done, ByteTokenizer.pad_id)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
            done |= next_token == ByteTokenizer.pad_id
            if bool(done.all()):
                break
        return nn.functional.pad(tokens, (0, max_length - tokens.shape[1]), value=ByteTokenizer.pad_id)
