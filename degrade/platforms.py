"""Platform presets for `uvssm simulate`: how each social-media platform is *believed* to process an
upload. These are approximations, not the platforms' real (unpublished, changing) pipelines.

What is known (the VOTES paper, Luo et al., ACM MM 2022, §4): WeChat scales every video to fit
960×540 (smaller videos are left as they are) and re-encodes it for instant delivery; the UVSSM
Bilibili, Twitter and YouTube pairs were downloaded at 640×360 from 1280×720 uploads. All use
H.264. The rate-control values below are ours: constant-quality x264 with a VBV cap at a bitrate
typical of that resolution on that kind of service (fast presets for the instant-messaging
platform, slower ones for the video sites).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PlatformPreset:
    name: str
    width: int  # the frame is scaled to fit inside width × height, keeping its aspect ratio
    height: int
    crf: float
    maxrate_kbps: int
    bufsize_kbps: int
    x264_preset: str
    gop_seconds: float
    upscale: bool = False  # False: frames already smaller than the box are not scaled
    scaler: str = "bicubic"  # swscale flags
    note: str = "approximation: the platform's real processing is unpublished"

    def fit(self, width: int, height: int) -> tuple[int, int]:
        """Output size for a `width` × `height` input: inside the box, aspect kept, even numbers."""
        factor = min(self.width / width, self.height / height)
        if factor >= 1 and not self.upscale:
            factor = 1.0
        w, h = round(width * factor / 2) * 2, round(height * factor / 2) * 2
        return max(w, 2), max(h, 2)

    def encode_options(self, fps: float) -> dict:
        """libx264 output options, as ffmpeg option names without the dash."""
        return {"c:v": "libx264", "preset": self.x264_preset, "crf": f"{self.crf:g}",
                "maxrate": f"{self.maxrate_kbps}k", "bufsize": f"{self.bufsize_kbps}k",
                "g": str(max(1, round(self.gop_seconds * fps))), "pix_fmt": "yuv420p", "threads": "1"}

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, PlatformPreset] = {p.name: p for p in (
    PlatformPreset("wechat", 960, 540, crf=26, maxrate_kbps=1200, bufsize_kbps=2400, x264_preset="veryfast",
                   gop_seconds=2.0),
    PlatformPreset("bilibili", 640, 360, crf=27, maxrate_kbps=700, bufsize_kbps=1400, x264_preset="slow",
                   gop_seconds=4.0, upscale=True),
    PlatformPreset("twitter", 640, 360, crf=25, maxrate_kbps=832, bufsize_kbps=1664, x264_preset="medium",
                   gop_seconds=3.0, upscale=True),
    PlatformPreset("youtube", 640, 360, crf=28, maxrate_kbps=600, bufsize_kbps=1200, x264_preset="slow",
                   gop_seconds=5.0, upscale=True),
)}


def get_preset(name: str) -> PlatformPreset:
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown platform {name!r}; presets: {', '.join(PRESETS)}") from None
