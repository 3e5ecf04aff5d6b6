"""Degradations as data, and the synthesis that applies them (no networks here).

    recipe      the VOTES recipe (Downscale, X264Recipe) and the one ffmpeg command per clip that makes
                every setting (synth_command)
    reds        synthesising one clip's compressed low-resolution frames with that command
    platforms   presets of what a platform is believed to do to an upload (`uvssm simulate`)

MATLAB's bicubic `imresize` (uvssm's bicubic reference row; the paper's Table 2 has none) is `uvssm.base.scalers.imresize`, in the base layer.
"""
