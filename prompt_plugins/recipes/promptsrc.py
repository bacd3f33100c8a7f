"""The released PromptSRC recipes (``muzairkhattak/PromptSRC@bb95c77``), PromptKD's ViT-L/14 teacher config of
PromptSRC, and DPC stage 2 over a PromptSRC backbone (not released). The method's own settings (loss weights, GPA)
are ``method_options``, checked by ``methods.promptsrc.method_configs``."""
from __future__ import annotations

from ..methods.promptsrc import method_configs
from .dassl import dassl_sgd, prose
from .recipe import Recipe

PROMPTSRC = "muzairkhattak/PromptSRC@bb95c77b634d63488f2cad81ff4a72d53bdd06d5"
PROMPTKD = "zhengli97/PromptKD@ec244f783c8b9b2503ad5a838a3fd97365686ddb"
DPC = "JREion/DPC@01e6b599d6515c38f4d723a8ea844ac4d1abfadd"
_CONFIGS = f"{PROMPTSRC}:configs/trainers/PromptSRC"

#: TEXT_LOSS_WEIGHT 25, IMAGE_LOSS_WEIGHT 10, the KL at weight 1 divided by B x C, GPA_MEAN 15, GPA_STD 1
_OPTIONS = dict(text_weight=25.0, image_weight=10.0, kl_weight=1.0, kl_reduction="released", gpa=True, gpa_mean=15.0,
                gpa_std=1.0)
_PROMPT = dict(n_ctx=4, ctx_init="a photo of a", depth=9, n_visual_ctx=4, visual_depth=9)
_NOTES = prose("""
    Released runs keep CLIP and the text context in fp16 (PREC fp16: the only precision the release runs) and
    aggregate the whole state dict in fp16 (towers included); prompt-plugins keeps fp32 prompts and aggregates
    them alone, in fp32. The KL term is sum / (B x C) as released (kl_reduction 'released'; 'batchmean' divides
    by B). The frozen text target averages the 60 ImageNet templates for every data set; the frozen image
    features are the same augmented images through the CLIP without prompts. Test: the last epoch
    (--load-epoch 20), i.e. the GPA prompts.""")

PROMPTSRC_RECIPE = Recipe(
    name="promptsrc", method="promptsrc", source=f"{_CONFIGS}/vit_b16_c2_ep20_batch4_4+4ctx.yaml", **dassl_sgd(0.0025),
    batch_size=4, epochs=20, shots=16, **_PROMPT, method_options=dict(_OPTIONS), notes=prose(f"""
    Base-to-new (scripts/promptsrc/base2new_train.sh: 16 shots, SUBSAMPLE_CLASSES base); no per-data-set
    overrides. {_NOTES}"""))

PROMPTSRC_CROSS = PROMPTSRC_RECIPE.replace(
    name="promptsrc_cross", source=f"{_CONFIGS}/vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets.yaml", depth=3,
    visual_depth=3, method_options=dict(_OPTIONS, gpa_mean=6.0, gpa_std=10.0), notes=prose(f"""
    Cross-data-set transfer and domain generalisation: trained on all ImageNet classes (16 shots), evaluated on
    the other data sets; depth 3 in both towers, GPA mean 6, std 10. scripts/promptsrc/xd_train.sh names a
    vit_b16_c2_ep5_batch4_4+4ctx_cross_datasets config that does not exist; reproduce_xd.sh uses this ep20 file.
    {_NOTES}"""))

PROMPTSRC_FEW_SHOT = PROMPTSRC_RECIPE.replace(
    name="promptsrc_few_shot", source=f"{_CONFIGS}/vit_b16_c2_ep50_batch4_4+4ctx_few_shot.yaml", epochs=50,
    method_options=dict(_OPTIONS, gpa_mean=30.0, gpa_std=30.0), notes=prose(f"""
    Few-shot (scripts/promptsrc/few_shot.sh: 1, 2, 4, 8 or 16 shots over all classes, --shots). GPA mean 30,
    std 30 is the file's setting for ImageNet, Caltech101, OxfordPets, Food101, UCF101 and SUN397; its comment
    gives mean 45, std 5 for StanfordCars, Flowers102, FGVCAircraft, DTD and EuroSAT:
    replace(method_options={{..., 'gpa_mean': 45.0, 'gpa_std': 5.0}}). {_NOTES}"""))

PROMPTSRC_VIT_L14 = PROMPTSRC_RECIPE.replace(
    name="promptsrc_vit_l14", source=f"{PROMPTKD}:configs/trainers/PromptSRC/vit_l14_c2_ep20_batch8_4+4ctx.yaml",
    lr=0.005, batch_size=8, notes=prose(f"""
    PromptKD's config for its ViT-L/14 PromptSRC teacher (lr 0.005, batch 8, otherwise the promptsrc recipe);
    the backbone is ViT-L/14. {_NOTES}"""))

DPC_PROMPTSRC = Recipe(
    name="dpc_promptsrc", method="dpc",
    source=f"{DPC}:configs/trainers/SPLE/PromptKD/vit_b16_c2_ep20_batch4_4+4ctx.yaml",
    **dassl_sgd(0.002), batch_size=4, epochs=20, shots=16, **_PROMPT, weight_base=0.2, weight_new=0.0, top_k=8,
    notes=prose("""
    Not released; our choice. DPC published PromptSRC+DPC numbers but no trainer or config for it, so stage 2
    over a PromptSRC run (train --method dpc --from RUN) reuses the numbers of the released PromptKD SPLE config
    (lr 0.002, 20 epochs, batch 4, K 8, w_b 0.2, WEIGHT_FOR_NEW 0 as the README passes it). The parallel prompt
    clones every PromptSRC prompt tensor (text context, deep text, visual and deep visual prompts, the GPA
    values); the stage-2 loss is DPC's hard-negative InfoNCE only, without PromptSRC's terms and without GPA, as
    in both released DPC trainers. The prompt fields record PromptSRC's shape; train takes the shape from the
    stage-1 adapter."""))

RECIPES = (PROMPTSRC_RECIPE, PROMPTSRC_CROSS, PROMPTSRC_FEW_SHOT, PROMPTSRC_VIT_L14, DPC_PROMPTSRC)

for _recipe in RECIPES:  # the method's own options, checked by its typed configs
    if _recipe.method == "promptsrc":
        method_configs(_recipe.method_options, where=f"recipe {_recipe.name!r} method_options")
