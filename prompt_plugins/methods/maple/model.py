"""``wrap(model, classnames, method="maple", ...)``: MaPLe prompts on a ``PromptedCLIP``. Saved MaPLe adapters load
through CoOp's generic ``load_prompted`` (the ``"maple"`` prompt type rebuilds the module)."""
from __future__ import annotations

from typing import Sequence

from ...model import PromptedCLIP, PromptedOptions
from ...prompts.ctx_init import ContextWords, split_ctx_init
from ...registry import Target
from ...tokenization import check_classnames
from ..coop.model import prompted_clip
from .config import MAPLE_DEPTH, MaPLeConfig, MaPLeOptions
from .prompt import MaPLePrompt


def maple_config(target: Target, options: MaPLeOptions) -> tuple[MaPLeConfig, ContextWords]:
    """(the prompt module's config, what the ctx-init rule made of ``n_ctx`` / ``ctx_init``)."""
    words = split_ctx_init(target.tokenizer, options.n_ctx, options.ctx_init, options.ctx_init_rule)
    depth = options.depth if options.depth is not None else options.visual_depth
    if depth is None:
        depth = min(MAPLE_DEPTH, MaPLePrompt.max_depth(target.backend))
    config = MaPLeConfig(n_ctx=words.n_ctx, ctx_init=words.learned, depth=depth, coupler_init=options.coupler_init,
                         init_std=options.init_std)
    return config, words


def build_maple(target: Target, classnames: Sequence[str], options: PromptedOptions,
                maple: MaPLeOptions) -> PromptedCLIP:
    """MaPLe prompts (``MaPLeOptions``) on the target's model; with the released ctx-init rule the words after the
    learned context go into the template ("a photo of a", n_ctx 2: template "of a {}.")."""
    names = check_classnames(classnames)
    config, words = maple_config(target, maple)
    module = MaPLePrompt.build(target.backend, target.tokenizer, config)
    return prompted_clip(target, names, module, "maple", options.replace(template=words.template(options.template)))
