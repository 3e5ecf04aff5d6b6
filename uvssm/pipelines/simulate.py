"""`uvssm simulate`: make a shared-video look-alike from an original, with the true frame mapping.

The LQ video is what a platform preset (degrade/platforms.py) would make of the original, with
optional distortions real pairs show: a later start, another frame rate, dropped or duplicated
frames, a crop, letterbox bars, a rotation flag, and full-range colour. The original is decoded frame by frame as it is stored
(passthrough timing, so a variable-frame-rate original is not resampled; its own colour matrix and
range), and each LQ frame takes the original frame nearest to its time. Beside `OUT.mp4` it
writes `OUT.mapping.parquet` (for each LQ frame, the HQ frame it was made from) and `OUT.json`
(the geometry and every setting), which are the ground truth `uvssm build` is scored against.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from degrade.platforms import get_preset
from uvssm.base import atomic
from uvssm.base.errors import UvssmError
from uvssm.base.decode import rgb_filter, rgb_frames
from uvssm.base.ffmpeg import FFmpeg, FrameWriter, command, run
from uvssm.base.probe import frame_times, probe


@dataclass(frozen=True)
class SimulateOptions:
    platform: str = "wechat"
    trim_start: int = 0  # HQ frames skipped at the start
    fps: float | None = None  # output frame rate (None: the original's)
    drop: float = 0.0  # probability that an output frame is dropped
    duplicate: float = 0.0  # probability that an output frame is shown twice
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)  # HQ pixels cut (left, top, right, bottom) before scaling
    letterbox: int = 0  # black bar height (LQ pixels) added at the top and the bottom
    rotate: int = 0  # display-rotation flag, degrees counter-clockwise (0, 90, 180, 270); pixels unchanged
    full_range: bool = False  # tag and encode full-range ("pc") YUV instead of limited
    frames: int | None = None  # at most this many output frames
    seed: int = 0

    def check(self) -> None:
        if self.rotate not in (0, 90, 180, 270):
            raise UvssmError(f"rotate must be 0, 90, 180 or 270, got {self.rotate}")
        if not (0 <= self.drop < 0.5 and 0 <= self.duplicate < 0.5):
            raise UvssmError("drop and duplicate are probabilities below 0.5")
        if min(self.crop) < 0 or self.letterbox < 0 or self.trim_start < 0:
            raise UvssmError("crop, letterbox and trim_start must not be negative")


def plan_mapping(times: np.ndarray, fps_out: float, options: SimulateOptions) -> list[int]:
    """HQ frame index of every LQ frame, from the HQ frames' presentation times (seconds; variable
    frame rates as they are): LQ frame j shows the HQ frame whose timestamp is nearest to
    times[trim_start] + j / fps_out (a tie goes to the later frame), until the HQ video ends; then
    drops and duplicates are drawn."""
    times = np.asarray(times, dtype=np.float64)
    if options.trim_start >= len(times):
        return []
    last = float(times[-1] - times[-2]) if len(times) > 1 else 1.0 / fps_out
    end = times[-1] + last / 2  # the last frame is shown for as long as the interval before it
    rng = np.random.default_rng(options.seed)
    mapping: list[int] = []
    j = 0
    while True:
        t = times[options.trim_start] + j / fps_out
        if t >= end - 1e-9:
            break
        after = int(np.searchsorted(times, t, side="left"))
        # nearest timestamp; a tie (t halfway, to within 1 µs) goes to the later frame
        i = after if after < len(times) and (after == 0 or times[after] - t <= t - times[after - 1] + 1e-6) else after - 1
        j += 1
        if rng.random() < options.drop:
            continue
        mapping.append(i)
        if rng.random() < options.duplicate:
            mapping.append(i)
    if options.frames is not None:
        mapping = mapping[:options.frames]
    return mapping


def simulate(hq_path: str | Path, out: str | Path, ffmpeg: FFmpeg, options: SimulateOptions = SimulateOptions()) -> dict:
    """Write OUT (an .mp4), OUT.mapping.parquet and OUT.json. Returns the JSON's content."""
    options.check()
    hq_path, out = Path(hq_path), Path(out).with_suffix(".mp4")
    info = probe(hq_path)
    preset = get_preset(options.platform)
    width, height = info.display_size
    left, top, right, bottom = options.crop
    crop_w, crop_h = width - left - right, height - top - bottom
    if crop_w < 16 or crop_h < 16:
        raise UvssmError(f"{hq_path}: crop {options.crop} leaves {crop_w}x{crop_h}")
    fps_in = info.avg_fps
    fps_out = options.fps or fps_in
    mapping = plan_mapping(frame_times(hq_path), fps_out, options)
    if not mapping:
        raise UvssmError(f"{hq_path}: no frames left after trimming {options.trim_start}")
    lq_w, lq_h = preset.fit(width, height)
    content_h = lq_h - 2 * options.letterbox
    if content_h < 8:
        raise UvssmError(f"letterbox {options.letterbox} leaves no picture in a {lq_w}x{lq_h} frame")
    rng_tag = "pc" if options.full_range else "tv"
    vf = (f"scale={lq_w}:{content_h}:flags={preset.scaler}:out_range={rng_tag}:out_color_matrix=bt709,"
          f"pad={lq_w}:{lq_h}:0:{options.letterbox}:black")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.mp4")
    args = command("-", str(tmp), before={"f": "rawvideo", "pix_fmt": "rgb24", "s": f"{crop_w}x{crop_h}",
                                          "r": f"{fps_out:g}"},
                   after={"vf": vf, **preset.encode_options(fps_out), "color_range": rng_tag, "colorspace": "bt709",
                          "color_primaries": "bt709", "color_trc": "bt709"}, overwrite=True)
    try:
        with FrameWriter(ffmpeg, args, f"{out}: encoding failed") as enc:
            wanted = iter(mapping)
            target = next(wanted)
            # every decoded frame once (passthrough timing, not resampled to a constant rate), in
            # the source's own colour matrix and range, rotation applied
            frames = rgb_frames(ffmpeg, info)
            for index, frame in enumerate(frames):
                while target == index:
                    if not enc.write(np.ascontiguousarray(frame[top:top + crop_h, left:left + crop_w])):
                        target = None  # the encoder stopped: its failure is raised on closing
                        break
                    target = next(wanted, None)
                if target is None:
                    frames.close()
                    break
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if options.rotate:
        rotated = out.with_name(f".{out.stem}.rot.mp4")
        run(ffmpeg, command(str(tmp), str(rotated), before={"display_rotation": options.rotate}, after={"c": "copy"},
                            overwrite=True), context=f"{out}: setting the rotation flag")
        tmp.unlink()
        tmp = rotated
    tmp.replace(out)

    frames = pd.DataFrame({"lq_frame": np.arange(len(mapping)), "hq_frame": mapping})
    atomic.write_parquet(out.with_suffix(".mapping.parquet"), frames)
    scale_x, scale_y = crop_w / lq_w, crop_h / content_h
    truth = {
        "hq": str(hq_path), "lq": str(out), "preset": preset.to_dict(), "options": asdict(options),
        "hq_fps": fps_in, "lq_fps": fps_out, "hq_size": [width, height], "lq_size": [lq_w, lq_h],
        # LQ pixel (u, v) inside the picture shows HQ point (left + u·sx, top + (v − letterbox)·sy)
        "geometry": {"crop": list(options.crop), "scale_x": scale_x, "scale_y": scale_y,
                     "letterbox": options.letterbox, "content_size": [lq_w, content_h]},
        "n_lq_frames": len(mapping), "hq_decode": {"filter": rgb_filter(info), "fps_mode": "passthrough",
                                                     "matrix": list(info.decode_matrix())},
        "ffmpeg": ffmpeg.version, "x264": ffmpeg.x264,
    }
    atomic.write_text(out.with_suffix(".json"), json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return truth
