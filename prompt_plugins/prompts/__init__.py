"""Prompt modules: what a prompt produces (``Prompts``), their base class and the shared soft prompt."""
from .base import PromptModule, Prompts, prompt_from_dict, prompt_type
from .soft import DeepPromptConfig, SoftPrompt, SoftPromptConfig

__all__ = ["Prompts", "PromptModule", "prompt_type", "prompt_from_dict", "SoftPrompt",
           "SoftPromptConfig", "DeepPromptConfig"]
