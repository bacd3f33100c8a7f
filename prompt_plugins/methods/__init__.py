"""The methods, one folder each; importing this package registers them (and their importers)."""
from . import coop, dpc, ga2, ivlp, kgcoop, maple, promptkd, promptsrc  # noqa: F401

__all__ = ["coop", "dpc", "ga2", "ivlp", "kgcoop", "maple", "promptkd", "promptsrc"]
