"""polymodal: multimodal representation learning in PyTorch."""

__version__ = "0.1.0"
