"""Names of a synthesised setting (QP × scale) and of the folders `synth-reds` writes for it.

Every place that writes, finds or labels a setting calls these, so the names cannot drift apart:

>>> setting_name(28, 2), lq_folder(28, 2), clean_lr_folder(4)
('qp28_x2', 'LQ_qp28_x2', 'LR_clean_x4')
"""

from __future__ import annotations

LQ_FOLDER_GLOB = "LQ_qp*_x*"  # every setting folder of a synth-reds output
# how `uvssm build` spells the folder of a platform it knows (the UVSSM release's names); others keep their name
PLATFORM_FOLDERS = {"wechat": "WeChat", "bilibili": "Bilibili", "twitter": "Twitter", "youtube": "YouTube"}


def setting_name(qp: int, scale: int) -> str:
    """The short name of a setting, as Table 2's `setting` column and the folder suffix."""
    return f"qp{qp}_x{scale}"


def lq_folder(qp: int, scale: int) -> str:
    """The folder of a setting's decoded LQ frames, .mp4s, QP maps and manifests."""
    return f"LQ_{setting_name(qp, scale)}"


def clean_lr_folder(scale: int) -> str:
    """The folder of `--clean-lr` frames: what the encoder received at this scale."""
    return f"LR_clean_x{scale}"


def platform_folder_name(platform: str) -> str:
    """The folder `uvssm build` writes a platform's pairs into: "wechat" -> "WeChat"; an unknown platform as named."""
    return PLATFORM_FOLDERS.get(platform.lower(), platform)
