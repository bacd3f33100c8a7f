"""GA2 + DPC together (neither paper did it): DPC dualises every trainable tensor of the
HardSoftCoupler (soft tokens, mapping layer, deep/visual prompts); the hard prompt stays frozen."""
import torch

import prompt_plugins as pp
from tiny_models import hard_negative_steps, images

NAMES = ["jump", "ride a horse", "swim", "climb", "dance", "run"]
BASE = NAMES[:3]


def _ga2_dpc(model):
    g = torch.Generator().manual_seed(7)
    ga2 = pp.wrap(model, NAMES, method="ga2", hard_prompt=torch.randn(4, 64, generator=g) * 0.02,
                  depth=2, n_visual_ctx=2, dropout=0.0, video_layout="BTCHW")  # (B, 3, 3, H, W): T=3 frames
    return ga2, pp.DualPromptWrapper(ga2, base_classes=BASE, weight_base=0.2)


def test_ga2_plus_dpc_trains_base_only_and_round_trips(backend_name, clip_model, tmp_path):
    ga2, dpc = _ga2_dpc(clip_model)
    dualised = set(dpc.frozen_tensors())
    assert any("mapping" in k or "proj" in k for k in dualised), dualised
    assert not any("hard" in k for k in dualised), "the hard prompt must stay frozen, not be dualised"
    video = images(2, frames=3)
    new_idx, base_idx = [3, 4, 5], [0, 1, 2]
    with torch.no_grad():
        assert torch.equal(dpc.encode_text(base_idx), ga2.encode_text(base_idx))
        new_text0, new_img0 = dpc.encode_text(new_idx), dpc.encode_image(video, route="new")
        base_text0 = dpc.encode_text(base_idx)
    data = [(torch.randn(3, 3, 32, 32), c) for c in range(3) for _ in range(2)]
    _, loss = hard_negative_steps(dpc, data, video, torch.tensor([0, 1]), lr=0.05)
    assert torch.isfinite(loss)
    with torch.no_grad():
        assert torch.equal(dpc.encode_text(new_idx), new_text0)
        assert torch.equal(dpc.encode_image(video, route="new"), new_img0)
        assert not torch.allclose(dpc.encode_text(base_idx), base_text0, atol=1e-5)
        expected = dpc(video)
    pp.save_pretrained(dpc, tmp_path)
    dpc.eject()
    loaded = pp.from_pretrained(clip_model, tmp_path, video_layout="BTCHW")
    assert isinstance(loaded, pp.DualPromptWrapper)
    with torch.no_grad():
        torch.testing.assert_close(loaded(video), expected, atol=1e-5, rtol=0)
