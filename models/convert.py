"""Foreign checkpoint layouts ↔ uvssm's (which is BasicSR's): renaming only, no tensor changes.

mmagic (formerly mmediting) saves `{"meta": ..., "state_dict": {"generator.<layer>": tensor, ...}}`
with its own layer names (mmagic/models/editors/edvr/edvr_net.py, .../basicvsr/basicvsr_net.py):
- mmcv's `ConvModule` wraps its convolution as `.conv`: `feat_l2_conv1.conv.weight` is BasicSR's
  `conv_l2_1.weight`, `pcd_alignment.offset_conv1.l3.conv.weight` is `pcd_align.offset_conv1.l3.weight`;
- `PixelShufflePack` keeps its convolution as `.upsample_conv`: `upsample1.upsample_conv` is `upconv1`;
- BasicVSR's `backward_resblocks` / `forward_resblocks` are BasicSR's `backward_trunk` / `forward_trunk`,
  and SPyNet's basic modules are five ConvModules in a Sequential, where BasicSR interleaves ReLUs:
  ConvModule i is BasicSR's Sequential index 2·i.
A `generator_ema.` copy, where present, is taken over `generator.` (as BasicSR's params_ema).
`to_mmagic` goes the other way; it must name which BasicSR layers are mmcv ConvModules (they gain `.conv`):
EDVRNet's feat_l*_conv*, PCDAlignment's offset_conv*, feat_conv and cas_offset_conv*, and TSAFusion's
feat_fusion, spatial_attn1-4, spatial_attn_l1-3 and spatial_attn_add1 (temporal_attn1/2, spatial_attn5,
spatial_attn_add2 and the DCN packs are plain convolutions); without TSA, `fusion` is a plain nn.Conv2d.
"""

from __future__ import annotations

import re

_EDVR = [
    (r"^feat_l([23])_conv([12])\.conv\.", r"conv_l\1_\2."),
    (r"^pcd_alignment\.", "pcd_align."),
    (r"^upsample([12])\.upsample_conv\.", r"upconv\1."),
]
_BASICVSR = [
    (r"^(backward|forward)_resblocks\.", r"\1_trunk."),
    (r"^upsample([12])\.upsample_conv\.", r"upconv\1."),
]
_EDVR_OUT = [
    (r"^conv_l([23])_([12])\.", r"feat_l\1_conv\2.conv."),
    (r"^pcd_align\.((?:offset_conv[123]|feat_conv)\.l[123]|cas_offset_conv[12])\.", r"pcd_alignment.\1.conv."),
    (r"^pcd_align\.", "pcd_alignment."),
    (r"^fusion\.(feat_fusion|spatial_attn[1-4]|spatial_attn_l[1-3]|spatial_attn_add1)\.", r"fusion.\1.conv."),
    (r"^upconv([12])\.", r"upsample\1.upsample_conv."),
]
_BASICVSR_OUT = [
    (r"^(backward|forward)_trunk\.", r"\1_resblocks."),
    (r"^upconv([12])\.", r"upsample\1.upsample_conv."),
]
_SPYNET_OUT = re.compile(r"^spynet\.basic_module\.(\d+)\.basic_module\.(\d+)\.(weight|bias)$")
_CONV_MODULE = re.compile(r"\.conv\.(weight|bias)$")  # ConvModule's inner convolution (BasicSR has none)
_SPYNET_CONV = re.compile(r"^spynet\.basic_module\.(\d+)\.basic_module\.(\d+)\.conv\.(weight|bias)$")


def mmagic_generator(checkpoint: dict) -> tuple[dict, str]:
    """The generator's weights of an mmagic checkpoint without their prefix, and which copy they are
    ("generator_ema" where present, else "generator"). Raises ValueError if there is none."""
    sd = checkpoint.get("state_dict", checkpoint)
    if not isinstance(sd, dict):
        raise ValueError("no state_dict")
    for prefix in ("generator_ema.", "generator."):
        found = {k[len(prefix):]: v for k, v in sd.items() if isinstance(k, str) and k.startswith(prefix)}
        if found:
            return found, prefix[:-1]
    raise ValueError("no generator.* weights (not an mmagic restorer checkpoint)")


def mmagic_architecture(sd: dict) -> str:
    """"edvr" or "basicvsr", from the layer names; ValueError for anything else."""
    if any(k.startswith("pcd_alignment.") for k in sd):
        return "edvr"
    if any(k.startswith("backward_resblocks.") for k in sd) and any(k.startswith("spynet.") for k in sd):
        return "basicvsr"
    raise ValueError("neither EDVRNet (pcd_alignment.*) nor BasicVSRNet (spynet.*, backward_resblocks.*) weights; "
                     "uvssm converts mmagic's EDVR and BasicVSR")


def basicsr_key(key: str, arch: str) -> str:
    """BasicSR's name of the mmagic layer `key` of architecture `arch` ("edvr" or "basicvsr")."""
    for pattern, repl in _EDVR if arch == "edvr" else _BASICVSR:
        key = re.sub(pattern, repl, key)
    spy = _SPYNET_CONV.match(key)
    if spy:
        return f"spynet.basic_module.{spy.group(1)}.basic_module.{2 * int(spy.group(2))}.{spy.group(3)}"
    return _CONV_MODULE.sub(r".\1", key)


def mmagic_key(key: str, arch: str) -> str:
    """mmagic's name (generator prefix not included) of the BasicSR layer `key` of `arch`."""
    for pattern, repl in _EDVR_OUT if arch == "edvr" else _BASICVSR_OUT:
        key = re.sub(pattern, repl, key)
    spy = _SPYNET_OUT.match(key)
    if spy:
        index = int(spy.group(2))
        if index % 2:
            raise ValueError(f"{key}: SPyNet's odd Sequential indices are ReLUs, which have no weights")
        return f"spynet.basic_module.{spy.group(1)}.basic_module.{index // 2}.conv.{spy.group(3)}"
    return key


def _renamed(sd: dict, rename) -> dict:
    out = {}
    for key, value in sd.items():
        new = rename(key)
        if new in out:
            raise ValueError(f"{key} and another layer both become {new}")
        out[new] = value
    return out


def from_mmagic(sd: dict) -> tuple[str, dict]:
    """(architecture, state dict under BasicSR's names) of an mmagic generator's weights (prefix removed)."""
    arch = mmagic_architecture(sd)
    return arch, _renamed(sd, lambda key: basicsr_key(key, arch))


def to_mmagic(sd: dict, arch: str) -> dict:
    """The state dict (BasicSR's names) of an EDVR or BasicVSR under mmagic's names (no generator prefix);
    checked by converting it back, so what is written is what `from_mmagic` reads as `sd`."""
    out = _renamed(sd, lambda key: mmagic_key(key, arch))
    back_arch, back = from_mmagic(out)
    if back_arch != arch or list(back) != list(sd):
        wrong = [k for k in sd if k not in back][:3]
        raise ValueError(f"mmagic's names for {', '.join(wrong) or 'these layers'} do not convert back")
    return out


# --- COMISR's TensorFlow release (google-research comisr/lib/model.py, inference_and_eval.py) --------------
# slim's conv2d keeps `<scope>/Conv/{weights,biases}`, conv2d_transpose `<scope>/Conv2d_transpose/...`; the
# inference graph's scopes are generator/generator_unit/... and fnet/...
_COMISR = [
    (r"^generator/generator_unit/(input_stage|output_stage)/conv/Conv/", r"generator.\1"),
    (r"^generator/generator_unit/(resblock_\d+)/(conv_[12])/Conv/", r"generator.\1.\2"),
    (r"^generator/generator_unit/conv_tran2highres/(conv_tran[12])/Conv2d_transpose/", r"generator.\1"),
    (r"^fnet/autoencode_unit/((?:en|de)coder_\d)/(conv_[12])/Conv/", r"fnet.autoencode_unit.\1.\2"),
    (r"^fnet/autoencode_unit/output_stage/(conv[12])/Conv/", r"fnet.autoencode_unit.output_stage.\1"),
    (r"^fnet/(deconv_flow_tran[12])/Conv2d_transpose/", r"fnet.\1"),
    (r"^fnet/(deconv_flow_conv)/Conv/", r"fnet.\1"),
]
EMA_SUFFIX = "/ExponentialMovingAverage"
_OPTIMIZER_SLOT = re.compile(r"/(Adam(_\d+)?|Momentum|RMSProp(_\d+)?)$")


def from_comisr_tf(tensors: dict, ema: bool = True) -> tuple[dict, str]:
    """(state dict under uvssm's COMISR names, "ema" or "plain") of the TF release's variables (numpy arrays).

    The release restores the EMA shadow variables (`<name>/ExponentialMovingAverage`, decay 0.99) when
    present, and so does this. Kernels go from TF's [kh, kw, in, out] (conv) and [kh, kw, out, in] (transposed
    conv) to PyTorch's [out, in, kh, kw] and [in, out, kh, kw]: the same axis permutation (3, 2, 0, 1)."""
    import torch

    shadow = {k[:-len(EMA_SUFFIX)]: v for k, v in tensors.items() if k.endswith(EMA_SUFFIX)}
    use_ema = ema and bool(shadow)
    out, unknown = {}, []
    for name, value in tensors.items():
        if name.endswith(EMA_SUFFIX) or _OPTIMIZER_SLOT.search(name):
            continue
        if not name.startswith(("generator/", "fnet/")):
            continue  # global_step, the inference graph's pre_* buffers, optimizer powers
        value = shadow.get(name, value) if use_ema else value
        for pattern, repl in _COMISR:
            m = re.match(pattern + r"(weights|biases)$", name)
            if m:
                key = m.expand(repl) + (".weight" if m.group(m.lastindex) == "weights" else ".bias")
                array = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value
                out[key] = torch.from_numpy(array.copy())
                break
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"variables of no COMISR layer: {', '.join(sorted(unknown)[:4])}")
    if not out:
        raise ValueError("no generator/ or fnet/ variables (not COMISR's TensorFlow checkpoint)")
    return out, "ema" if use_ema else "plain"
