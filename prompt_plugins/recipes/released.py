"""The released recipes of CoOp, DPC, ViFi-CLIP (IVLP prompting) and GA2-CLIP, read from the official
repositories at the commits below (``source`` names the config file; defaults come from the files named in
``notes``). Only numbers are recorded here."""
from __future__ import annotations

from ..errors import ConfigError
from . import kgcoop, promptsrc
from .maple import RECIPES as MAPLE_RECIPES
from .promptkd import PROMPTKD_RECIPES
from .recipe import Recipe

COOP = "KaiyangZhou/CoOp@ff61507c790454bce7c5052c3ac39e60772f1f89"
DASSL = "KaiyangZhou/Dassl.pytorch@c61a1b570ac6333bd50fb5ae06aea59002fb20bb"
DPC = "JREion/DPC@01e6b599d6515c38f4d723a8ea844ac4d1abfadd"
VIFI = "muzairkhattak/ViFi-CLIP@e2d1948307f582052078eb8a4afbeb50247166f1"
GA2 = "BBYL9413/GA2-CLIP@ef49d5a1b68c3c64d4d3b9e936af2d09636d85d4"

#: Dassl's SGD and warm-up settings shared by CoOp and DPC (momentum, wd, dampening, nesterov: Dassl defaults)
_DASSL_SGD = dict(optimizer="sgd", lr=0.002, momentum=0.9, weight_decay=5e-4, dampening=0.0, nesterov=False,
                  schedule="dassl_cosine", warmup_epochs=1, warmup_type="constant", warmup_lr=1e-5)
#: the IVLP prompt of ViFi-CLIP and GA2-CLIP: 16 text + 16 visual tokens, depth 9 in both towers, 32 frames
_IVLP_VIDEO = dict(optimizer="adamw", lr=0.04, weight_decay=1e-3, eps=1e-8, gpus=8, frames=32, shots=16,
                   n_ctx=16, ctx_init=None, depth=9, n_visual_ctx=16, visual_depth=9, warmup_type="linear",
                   warmup_lr=0.0)

def _prose(text: str) -> str:
    """One line of prose from an indented triple-quoted block."""
    return " ".join(text.split())


_COOP_NOTES = _prose(f"""
    Momentum, weight decay, dampening and nesterov are Dassl's defaults ({DASSL}:dassl/config/defaults.py);
    Dassl steps the cosine once per epoch with T_max = MAX_EPOCH, the warm-up epoch counted inside it.
    Base-to-new: 16 shots, SUBSAMPLE_CLASSES base (scripts/cocoop/base2new_train.sh with TRAINER=CoOp); the
    released test script loads epoch 10 (LOADEP), which must be changed to the epoch count. Released runs keep
    the CLIP weights and the context in fp16 (TRAINER.COOP.PREC fp16): not modelled.""")

COOP_RECIPE = Recipe(
    name="coop", method="coop", source=f"{COOP}:configs/trainers/CoOp/vit_b16_ctxv1.yaml", **_DASSL_SGD,
    batch_size=32, epochs=200, shots=16, n_ctx=4, ctx_init="a photo of a",
    notes=_COOP_NOTES + " ImageNet uses vit_b16_ep50_ctxv1.yaml: replace(epochs=50).")

COOP_EP50 = Recipe(
    name="coop_ep50", method="coop", source=f"{COOP}:configs/trainers/CoOp/vit_b16_ep50.yaml", **_DASSL_SGD,
    batch_size=32, epochs=50, shots=16, n_ctx=16, ctx_init=None,
    notes=_COOP_NOTES + " No CTX_INIT: 16 tokens (train.py default N_CTX) drawn from N(0, 0.02^2).")

DPC_RECIPE = Recipe(
    name="dpc", method="dpc", source=f"{DPC}:configs/trainers/SPLE/PromptKD/vit_b16_c2_ep20_batch4_4+4ctx.yaml",
    **_DASSL_SGD, batch_size=4, epochs=20, shots=16, n_ctx=4, ctx_init="a photo of a", depth=9, n_visual_ctx=4,
    visual_depth=9, weight_base=0.2, weight_new=0.0, top_k=8, notes=_prose(f"""
    Stage 2 as in the README's command ({DPC}:README.md): STACK.WEIGHT 0.2, WEIGHT_FOR_NEW 0.0, MODE converse,
    16 shots. The config file itself leaves WEIGHT_FOR_NEW unset (train.py default 0.2) and says
    'loop+converse', which the code treats as converse. The batch's 4 images are the anchors, each with
    top_k = 8 hard negatives (INFER_TOPK). Prompt shape: the PromptKD stage 1 (4 text + 4 visual tokens,
    depth 9, 'a photo of a'); PromptKD's distillation from ViT-L/14 is not modelled. The CoOp-backbone files
    (configs/trainers/SPLE/CoOp/*.yaml) are the dpc_coop_* recipes. Released runs use fp16 prompts: not modelled."""))



def _dpc_coop(config: str, *, batch_size: int, epochs: int, lr: float, top_k: int, weight_base: float) -> Recipe:
    """Stage 2 over a CoOp backbone: ``configs/trainers/SPLE/CoOp/<config>.yaml`` (4-token CoOp prompt)."""
    return DPC_RECIPE.replace(
        name="dpc_coop_" + config.removeprefix("vit_b16_"), source=f"{DPC}:configs/trainers/SPLE/CoOp/{config}.yaml",
        batch_size=batch_size, epochs=epochs, lr=lr, top_k=top_k, weight_base=weight_base, depth=1,
        n_visual_ctx=0, visual_depth=None, ctx_init=None, notes=_prose(f"""
        CoOp+DPC stage 2 (trainer StackSPLE_CoOp), MODE converse, WEIGHT_FOR_NEW 0.0, INFER_NONREPEAT True,
        Dassl SGD with one constant warm-up epoch at 1e-5. Its backbone (BACK_CKPT_PATH) is a 4-token CoOp
        run, nctx4_cscFalse_ctpend, epoch 50 of vit_b16_ep100; the configs all point at Caltech101 and no
        per-data-set table exists ({DPC}:configs/trainers/SPLE/CoOp/readme.md)."""))


#: the CoOp-backbone stage-2 configs, as released (batch, epochs, lr, K, w_b in each file)
DPC_COOP = [_dpc_coop("vit_b16_ep20", batch_size=4, epochs=20, lr=0.002, top_k=8, weight_base=0.5),
            _dpc_coop("vit_b16_ep20_bs8top4", batch_size=8, epochs=20, lr=0.002, top_k=4, weight_base=0.2),
            _dpc_coop("vit_b16_ep20_bs16top2", batch_size=16, epochs=20, lr=0.002, top_k=2, weight_base=0.5),
            _dpc_coop("vit_b16_ep10_bs2top2", batch_size=2, epochs=10, lr=0.002, top_k=2, weight_base=0.5),
            _dpc_coop("vit_b16_ep10_lr35", batch_size=4, epochs=10, lr=0.0035, top_k=8, weight_base=0.5)]

IVLP_VIFI = Recipe(
    name="ivlp_vifi", method="ivlp",
    source=f"{VIFI}:configs/base2novel/prompting_base2novel/hmdb/16_32_prompting_s1.yaml", **_IVLP_VIDEO,
    betas=(0.9, 0.98), batch_size=64, accumulation=2, epochs=11, schedule="timm_cosine", warmup_epochs=5,
    min_lr_ratio=0.01, notes=_prose("""
    Base-to-novel VL prompting; the UCF and SSv2 files (*_ivlp_s{1,2,3}.yaml) have the same numbers. Batch
    64 = 4 per GPU x 2 accumulation x 8 GPUs. AdamW betas (0.9, 0.98) and eps 1e-8 are fixed in
    utils/optimizer.py; weight decay 1e-3 and 5 warm-up epochs are utils/config.py defaults; timm
    CosineLRScheduler with lr_min = LR/100, warm-up from 0, warmup_prefix False. CTX_INIT 'a photo of a' is
    ignored by ViFi-CLIP for more than 4 tokens (random N(0, 0.02^2) init), hence ctx_init None. Shots:
    fs_base_s1_train holds 16 clips per base class. The released runs also use mixup 0.8, cutmix 1.0 and
    label smoothing 0.1 (SoftTargetCrossEntropy) and apex AMP O1: not modelled by this recipe. Prompting
    starts from the K400 fully fine-tuned ViFi-CLIP weights."""))

_GA2_NOTES = _prose("""
    lr is solver.lr x clip_ratio (utils/solver.py): clip_ratio 1.0 in the K400, UCF and SSv2 base2novel
    configs, 0.1 for HMDB (recipe ga2_hmdb); the SSv2 log ran with 0.1 and batch 8 against its config's 1.0
    and 4. AdamW betas (0.9, 0.999), eps 1e-8 are fixed in utils/solver.py. Batch 64 = 8 per GPU x 8 GPUs
    (SSv2: 4 per GPU); plus 1 anchor clip per GPU per step (a batch-1 loader), 8 per step, not counted in
    batch_size. WarmupCosineAnnealingLR: linear warm-up from 0 over 2 epochs, then cosine to 0 at epoch 12.
    The lr is set at iteration 0 and after every 10th iteration of each epoch (train_nce.py), reproduced by
    lr_update_every=10, so the first 9 iterations run at lr 0; replace(lr_update_every=1) updates every step.
    alpha 1.0 is the released anchor term (AttributeAnchorLoss(mode='parity', bank=['else'])), whose gradient
    is zero. The prompt template 'a video of a person' is ignored for 16 tokens (random init). The hard
    prompt comes from a prompt run on other data (K400 base, or K600 for K400): pass hard_prompt=....
    Released runs use AMP. Shots: fs_base_s1_train, 16 clips per base class.""")

GA2_RECIPE = Recipe(
    name="ga2", method="ga2", source=f"{GA2}:configs/base2novel/k400/k400_base2novel.yaml", **_IVLP_VIDEO,
    betas=(0.9, 0.999), batch_size=64, epochs=12, schedule="ga2_cosine", warmup_epochs=2, lr_update_every=10,
    anchor_clips_per_step=8, alpha=1.0, notes=_GA2_NOTES)

GA2_HMDB = GA2_RECIPE.replace(
    name="ga2_hmdb", source=f"{GA2}:configs/base2novel/hmdb51/hmdb_base2novel.yaml", lr=0.004,
    notes="HMDB51: solver.lr 4e-2 x clip_ratio 0.1 = 4e-3; otherwise as ga2. " + _GA2_NOTES)

RECIPES: dict[str, Recipe] = {r.name: r for r in (COOP_RECIPE, COOP_EP50, DPC_RECIPE, *DPC_COOP, IVLP_VIFI, GA2_RECIPE,
                                                  GA2_HMDB, *MAPLE_RECIPES, *promptsrc.RECIPES, *kgcoop.RECIPES,
                                                  *PROMPTKD_RECIPES)}


def get_recipe(name: str) -> Recipe:
    """The released recipe ``name`` (see ``RECIPES``); an unknown name is a ``ConfigError`` listing them."""
    if not isinstance(name, str) or name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}: use one of {sorted(RECIPES)}")
    return RECIPES[name]
