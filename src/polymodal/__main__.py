"""``python -m polymodal`` (what torchrun launches) runs the command line."""

from polymodal.cli import run

run()
