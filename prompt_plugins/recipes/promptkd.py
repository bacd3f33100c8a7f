"""The released recipes of PromptKD (``zhengli97/PromptKD``) and of DPC over PromptKD (``JREion/DPC``): numbers only,
read from the files named in ``source``; what each leaves out is in its ``notes``."""
from __future__ import annotations

from .recipe import Recipe

PROMPTKD = "zhengli97/PromptKD@ec244f783c8b9b2503ad5a838a3fd97365686ddb"
DPC = "JREion/DPC@01e6b599d6515c38f4d723a8ea844ac4d1abfadd"

#: Dassl's SGD with one constant warm-up epoch at 1e-5, cosine stepped once per epoch (every PromptKD config)
_SGD = dict(optimizer="sgd", momentum=0.9, weight_decay=5e-4, dampening=0.0, nesterov=False, schedule="dassl_cosine",
            warmup_epochs=1, warmup_type="constant", warmup_lr=1e-5)
#: the released prompt shape: 4 visual tokens in blocks 0..8 of the student; the 4 text tokens at depth 9 with
#: "a photo of a" are the teacher's (the student has no text prompt)
_PROMPT = dict(n_ctx=4, ctx_init="a photo of a", depth=9, n_visual_ctx=4, visual_depth=9)
_KD = dict(temperature=1.0, kd_weight=1000.0, reduction="released", unlabeled="all", selection="last")


def _prose(text: str) -> str:
    return " ".join(text.split())


_NOTES = _prose(f"""
    PromptKD trains the student's visual prompts and projector (VPT_image_trans) with the KD loss alone
    (KD_WEIGHT T^2 sum KL / (B C), T 1, no CE, labels unused) on NUM_SHOTS 0: the full train split of every
    class, base and new, unlabeled (TRAINER.MODAL base2novel; transductive, zhengli97/PromptKD#27); KD_WEIGHT 1000
    comes from {PROMPTKD}:scripts/promptkd/base2new_train.sh (its config says 1.0). The teacher is a PromptSRC
    ViT-L/14 run (4+4 tokens, depth 9) the user brings (train --teacher). Released model selection is
    TEST.FINAL_MODEL best_val, the epoch with the best accuracy on the base *test* split: here the last epoch,
    best_val via method_options selection='best_val'. shots 16 is the few-shot base set a DPC stage 2 on this run
    uses; PromptKD itself does not read it. Released runs use fp16 towers and convs (PREC fp16): not modelled.""")

PROMPTKD_RECIPE = Recipe(
    name="promptkd", method="promptkd", source=f"{PROMPTKD}:configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml",
    **_SGD, lr=0.005, batch_size=8, epochs=20, shots=16, **_PROMPT, method_options=dict(_KD), notes=_NOTES)

PROMPTKD_FINE = PROMPTKD_RECIPE.replace(
    name="promptkd_fine", method_options={**_KD, "kd_weight": 200.0},
    notes="KD_WEIGHT 200, the script's setting for FGVCAircraft, Flowers102 and DTD (a comment in "
          f"{PROMPTKD}:scripts/promptkd/base2new_train.sh); otherwise as promptkd. " + _NOTES)

PROMPTKD_DPC_BACKBONE = PROMPTKD_RECIPE.replace(
    name="promptkd_dpc_backbone", source=f"{DPC}:configs/trainers/PromptKD/vit_b16_c2_ep20_batch32_4+4ctx.yaml",
    batch_size=32, notes=_prose(f"""
    The PromptKD stage 1 of DPC's README command ({DPC}:README.md): batch 32, lr 0.005, 20 epochs, KD_WEIGHT 1000,
    T 1, NUM_SHOTS 0, TEST.SPLIT val (best_val selects on the base test split; here the last epoch). DPC's stage 2
    reads this run's model-best.pth.tar when present, else model.pth.tar-20. """) + " " + _NOTES)

DPC_PROMPTKD = Recipe(
    name="dpc_promptkd", method="dpc", source=f"{DPC}:configs/trainers/SPLE/PromptKD/vit_b16_c2_ep20_batch4_4+4ctx.yaml",
    **_SGD, lr=0.002, batch_size=4, epochs=20, shots=16, **_PROMPT, weight_base=0.2, weight_new=0.0, top_k=8,
    notes=_prose(f"""
    DPC stage 2 over a PromptKD run (train --method dpc --from <promptkd run>), as the README command runs it
    ({DPC}:README.md): STACK.WEIGHT 0.2, WEIGHT_FOR_NEW 0.0 (the config leaves it unset: train.py's default 0.2),
    MODE converse, 16 shots of the base classes, INFER_TOPK 8, symmetric InfoNCE only (no KD, no CE;
    SPLE.LOSS_KD_WEIGHT is never read). What DPC clones here: the student's visual prompts and projector; the
    teacher features are the same on both routes (text='frozen', spec backbones.md §9). Not reproduced (released
    bugs, spec §7.1): a parallel ctx on a fresh ViT-L/14 text tower whose deep prompts start random (the ctx_list
    bug: the visual deep prompts too), and a hard-negative scorer running the teacher with its untuned 'a photo
    of a' context (the ctx_x key bug); here the scorer is the frozen PromptKD student. best_val selects on the
    base test split: here the last epoch. Released runs use fp16 (not modelled)."""))

PROMPTKD_RECIPES = (PROMPTKD_RECIPE, PROMPTKD_FINE, PROMPTKD_DPC_BACKBONE, DPC_PROMPTKD)
