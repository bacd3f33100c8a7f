"""The released KgCoOp recipe (``htyao89/KgCoOp@c43ccc3``); its knowledge-guided weight is ``method_options``,
checked by ``methods.kgcoop.method_configs``."""
from __future__ import annotations

from ..methods.kgcoop import method_configs
from .dassl import dassl_sgd, prose
from .recipe import Recipe

KGCOOP = "htyao89/KgCoOp@c43ccc32c8739f64b165cfa205fcc6c0f5bb5b17"

KGCOOP_RECIPE = Recipe(
    name="kgcoop", method="kgcoop", source=f"{KGCOOP}:KgCoOp/configs/trainers/KgCoOp/vit_b16_ep100_ctxv1.yaml",
    **dassl_sgd(0.002), batch_size=128, epochs=100, shots=16, n_ctx=4, ctx_init="a photo of a",
    method_options=dict(weight=8.0), notes=prose("""
    Base-to-new as KgCoOp/scripts/base2new_train.sh runs it: N_CTX 4, CSC False, class token at the end, 16
    shots, SUBSAMPLE_CLASSES base, seeds 1-3, TRAINER.COOP.W 8.0 for every data set (KgCoOp/scripts/run.sh; the
    train.py default is 1.0), test at --load-epoch 100. CTX_INIT True makes the release hard-code 'a photo of a'
    whatever the string; here ctx_init is honoured. The frozen target is the data set's CoOp template (CUSTOM_TEMPLATES;
    'a photo of a {}.' for a data set it has none for, where the release fails). Released runs keep CLIP and the
    context in fp16: not modelled."""))

RECIPES = (KGCOOP_RECIPE,)
method_configs(KGCOOP_RECIPE.method_options, where="recipe 'kgcoop' method_options")  # checked by the typed config
