"""The released recipes of MaPLe and IVLP (``muzairkhattak/multimodal-prompt-learning``; IVLP also as the baseline of
``muzairkhattak/PromptSRC``) and DPC over MaPLe, which DPC never released (spec backbones.md §1.4, §2, §7.2). Every
one is Dassl's SGD (momentum 0.9, weight decay 5e-4) with a cosine stepped per epoch after one constant warm-up
epoch at 1e-5, 16 shots, base classes only; only numbers are recorded here."""
from __future__ import annotations

from .recipe import Recipe

MAPLE_REPO = "muzairkhattak/multimodal-prompt-learning@69bce21ae8eda80ad6187534b2dce09cf6c59e17"
PROMPTSRC_REPO = "muzairkhattak/PromptSRC@bb95c77b634d63488f2cad81ff4a72d53bdd06d5"
DPC_REPO = "JREion/DPC@01e6b599d6515c38f4d723a8ea844ac4d1abfadd"

_DASSL = dict(optimizer="sgd", momentum=0.9, weight_decay=5e-4, dampening=0.0, nesterov=False, schedule="dassl_cosine",
              warmup_epochs=1, warmup_type="constant", warmup_lr=1e-5, shots=16, batch_size=4)


def _prose(text: str) -> str:
    return " ".join(text.split())


_RELEASED_PRECISION = _prose("""
    Released runs use PREC fp16 (CLIP, ctx and proj in fp16, SGD on the fp16 tensors, every prompt cast with .half()
    where it enters a tower): not modelled; the prompts train in fp32 here (prompt_dtype='fp16' reproduces the
    insertion casts).""")
_CTX_RULE = _prose("""
    CTX_INIT 'a photo of a' with N_CTX <= 4: the first N_CTX tokens are learned and the other words stay fixed
    (2 tokens: 'a photo' learned, template 'of a {}.'), the released ctx-init rule (prompts/ctx_init.py).""")

MAPLE_RECIPE = Recipe(
    name="maple", method="maple", source=f"{MAPLE_REPO}:configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml",
    **_DASSL, lr=0.0035, epochs=5, n_ctx=2, ctx_init="a photo of a", depth=9, n_visual_ctx=2, visual_depth=9,
    method_options={"coupler_init": "shared"}, notes=_prose(f"""
    Base-to-new (scripts/maple/base2new_train_maple.sh; the test script loads epoch 5). PROMPT_DEPTH 9 in both
    towers, 2 tokens in both (n_visual_ctx / visual_depth name the visual side MaPLe derives through its
    couplers). All couplers start as copies of one Linear (trainers/maple.py _get_clones): coupler_init 'shared'.
    {_CTX_RULE} {_RELEASED_PRECISION}"""))

MAPLE_CROSS = MAPLE_RECIPE.replace(
    name="maple_cross", source=f"{MAPLE_REPO}:configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets.yaml",
    lr=0.0026, epochs=2, depth=3, visual_depth=3, notes=_prose(f"""
    Cross-dataset and domain generalisation: trained on all ImageNet classes (SUBSAMPLE_CLASSES all), 16 shots,
    depth 3. {_CTX_RULE} {_RELEASED_PRECISION}"""))

IVLP_MAPLE = Recipe(
    name="ivlp_maple", method="ivlp", source=f"{MAPLE_REPO}:configs/trainers/IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml",
    **_DASSL, lr=0.0035, epochs=5, n_ctx=2, ctx_init="a photo of a", depth=12, n_visual_ctx=2, visual_depth=12,
    notes=_prose(f"""
    IVLP of the MaPLe paper (trainer IVLP, trainers/independentVL.py): independent deep prompts, 2 text + 2 visual
    tokens, PROMPT_DEPTH_TEXT / _VISION 12, prompts N(0, 0.02^2) except the text context. {_CTX_RULE}
    {_RELEASED_PRECISION}"""))

IVLP_MAPLE_LANGUAGE = IVLP_MAPLE.replace(
    name="ivlp_maple_language",
    source=f"{MAPLE_REPO}:configs/trainers/IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only.yaml", lr=0.0025, n_ctx=4,
    depth=12, n_visual_ctx=0, visual_depth=None, notes=_prose(f"""
    Deep language prompting only (N_CTX_VISION 0, PROMPT_DEPTH_VISION 0): 4 text tokens, depth 12; with 4 tokens
    the whole 'a photo of a' is learned (template '{{}}.'). {_RELEASED_PRECISION}"""))

IVLP_SRC = IVLP_MAPLE.replace(
    name="ivlp_src", source=f"{PROMPTSRC_REPO}:configs/trainers/IVLP/vit_b16_c2_ep20_batch4_4+4ctx.yaml", lr=0.0025,
    epochs=20, n_ctx=4, depth=9, n_visual_ctx=4, visual_depth=9, notes=_prose(f"""
    The IVLP baseline PromptSRC is built on: 4 text + 4 visual tokens, depth 9 in both towers, 20 epochs; 'a photo
    of a' is learned whole (4 tokens). {_RELEASED_PRECISION}"""))

DPC_MAPLE = Recipe(
    name="dpc_maple", method="dpc", source=f"{DPC_REPO}:configs/trainers/SPLE/PromptKD/vit_b16_c2_ep20_batch4_4+4ctx.yaml",
    **_DASSL, lr=0.002, epochs=20, n_ctx=2, ctx_init="a photo of a", depth=9, n_visual_ctx=2, visual_depth=9,
    weight_base=0.2, weight_new=0.0, top_k=8, method_options={"backbone": "maple", "coupler_init": "shared"},
    notes=_prose(f"""
    Not released; our choice. DPC ships no MaPLe trainer and no MaPLe stage-2 config (only baseline MaPLe configs
    at lr 0.005, 20 epochs, batch 8 / 32: {DPC_REPO}:configs/trainers/MaPLe/), so stage 2 takes the numbers of the
    released PromptKD stage-2 file named in source (lr 0.002, 20 epochs, batch 4, INFER_TOPK 8, STACK.WEIGHT 0.2,
    WEIGHT_FOR_NEW 0.0 as the README passes it). The parallel prompt clones every MaPLe tensor (ctx, proj,
    compound_prompts_text, compound_prompt_projections): base classes run both towers with it, new classes with
    the MaPLe prompt exactly; the stage-2 loss is DPC's hard-negative term only (spec backbones.md §7.2). The prompt
    fields describe the stage-1 MaPLe run (recipe maple); train --method dpc --from RUN takes the shape from it."""))

RECIPES = (MAPLE_RECIPE, MAPLE_CROSS, IVLP_MAPLE, IVLP_MAPLE_LANGUAGE, IVLP_SRC, DPC_MAPLE)
