"""Small random-weight CLIP models built from each library's real classes (never mocks),
plus each library's own zero-shot text/image features to compare against."""
from __future__ import annotations

import torch
import torch.nn.functional as F

BACKENDS = ("openai", "open_clip", "hf")
IMAGE_SIZE = 32
WIDTH = 64
LAYERS = 3


def make_openai(seed: int = 0, fp16: bool = False, width: int = WIDTH, layers: int = LAYERS,
                vision_width: int | None = None):
    """``vision_width`` (default ``width``): a vision tower of another width than the text tower."""
    from clip.model import CLIP, convert_weights

    torch.manual_seed(seed)
    # embed_dim, image_resolution, vision_layers, vision_width, patch, context, vocab, t_width, t_heads, t_layers
    model = CLIP(64, IMAGE_SIZE, layers, vision_width or width, 8, 77, 49408, width, max(1, width // 32),
                 layers).eval()
    if fp16:
        convert_weights(model)
    return model


def make_open_clip(seed: int = 0, width: int = WIDTH, layers: int = LAYERS, vision_width: int | None = None):
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(seed)
    return CLIP(
        64,
        CLIPVisionCfg(layers=layers, width=vision_width or width, patch_size=8, image_size=IMAGE_SIZE, head_width=32),
        CLIPTextCfg(context_length=77, vocab_size=49408, width=width, heads=max(1, width // 32), layers=layers),
    ).eval()


def make_hf(seed: int = 0, width: int = WIDTH, layers: int = LAYERS, vision_width: int | None = None):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    vw = vision_width or width
    cfg = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                         num_attention_heads=max(1, width // 32), max_position_embeddings=77),
        vision_config=dict(hidden_size=vw, intermediate_size=4 * vw, num_hidden_layers=layers,
                           num_attention_heads=max(1, vw // 32), image_size=IMAGE_SIZE, patch_size=8),
        projection_dim=64,
    )
    return CLIPModel(cfg).eval()


FACTORIES = {"openai": make_openai, "open_clip": make_open_clip, "hf": make_hf}


def make_model(backend: str, **kwargs):
    return FACTORIES[backend](**kwargs)


def library_text_features(backend: str, model, texts: list[str]) -> torch.Tensor:
    """The library's own zero-shot text features for ``texts``, L2-normalised."""
    if backend == "openai":
        import clip

        feats = model.encode_text(clip.tokenize(texts))
    elif backend == "open_clip":
        import open_clip

        feats = model.encode_text(open_clip.tokenize(texts))
    else:
        import clip  # HF tiny models use the same BPE; tokenise with CLIP's tokenizer, pad with the HF pad id

        ids = clip.tokenize(texts)
        ids[ids == 0] = model.config.text_config.pad_token_id
        out = model.get_text_features(input_ids=ids)
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
    return F.normalize(feats.float(), dim=-1)


def library_image_features(backend: str, model, images: torch.Tensor) -> torch.Tensor:
    if backend == "hf":
        out = model.get_image_features(pixel_values=images)
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
    else:
        feats = model.encode_image(images)
    return F.normalize(feats.float(), dim=-1)


def images(n: int = 2, seed: int = 1, frames: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n, 3, IMAGE_SIZE, IMAGE_SIZE) if frames is None else (n, frames, 3, IMAGE_SIZE, IMAGE_SIZE)
    return torch.randn(shape, generator=g)


def hard_negative_steps(wrapper, dataset, x: torch.Tensor, y: torch.Tensor, *, lr: float, steps: int = 2,
                        top_k: int = 2):
    """A few plain-SGD steps of DPC's hard-negative objective on ``wrapper.trainable_parameters()``
    for the anchors ``x`` / ``y``. -> (objective, last loss)."""
    from prompt_plugins import HardNegativeOptimizer

    objective = HardNegativeOptimizer(wrapper, dataset, top_k=top_k)
    opt = torch.optim.SGD(wrapper.trainable_parameters(), lr=lr)
    for _ in range(steps):
        loss = objective(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return objective, loss
