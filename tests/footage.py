"""Synthetic camera footage over real photographs: originals for the share corpus (tests/shares.py).

Test code, not product. An original is a short clip rendered frame by frame in numpy: a camera path
(an affine map with bilinear sampling, scipy.ndimage.affine_transform) over one of the photographs
that scikit-image's wheel ships (`skimage.data`: astronaut, coffee, chelsea, rocket, camera,
hubble_deep_field; all bundled, none fetched), piped as rawvideo rgb24 into ffmpeg and encoded with
libx264 (-crf 14 -preset veryfast -threads 1 -pix_fmt yuv420p). The motion kinds:

- "zoom-in", "zoom-out": a steady zoom about the frame's centre (0.1-0.4% per frame);
- "pan": a slow, steady pan (0.5-3 px per frame, output pixels), mostly horizontal;
- "rotate": a slow roll about the centre (0.05-0.2 degrees per frame);
- "shake": hand-held: smooth random jitter of a few pixels and a little rotation, with a slow drift;
- "still-stretch": holds of 1-3 s (at the start, in the middle, at the end) between slow moves;
- "cut": two shots of different photographs and moves, joined;
- "plain-wall": low texture: a plain, slightly shaded wall (a fixed camera) before which a few small
  discs and squares move slowly.

Every random draw comes from the spec's seed (`random.Random(seed)` for a spec's numbers,
`numpy.random.default_rng(seed)` for a render's shake, wall, objects and noise), and x264 with fixed
settings and one thread is deterministic, so one spec gives a byte-identical file. Every frame gets
a little seeded sensor noise: a held still would otherwise give frames whose decoded pictures (and
so framemd5 hashes) are identical, which makes a share's hash truth a set of frames instead of one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import random
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

KINDS = ("zoom-in", "zoom-out", "pan", "rotate", "shake", "still-stretch", "cut", "plain-wall")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field")  # bundled in the wheel
WALL = "wall"  # not a photograph: a plain wall made from the seed
RENDER_VERSION = 1  # in the cached file's name: bump when a change of the renderer changes the pixels
ENCODER = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "14", "-pix_fmt", "yuv420p", "-threads", "1")


@dataclass(frozen=True)
class Shot:
    """One camera move over one picture. Speeds are per frame of motion time (held frames do not
    advance it); pixels are output pixels."""

    photo: str  # a name in PHOTOS, or WALL
    seconds: float
    zoom: float = 0.0  # magnification change per frame: +0.002 zooms in 0.2% per frame
    pan: tuple[float, float] = (0.0, 0.0)  # the camera's move (x right, y down), px per frame: content moves back
    turn: float = 0.0  # the camera's roll, degrees per frame
    shake: float = 0.0  # hand-held jitter, px (rms); the roll jitters by shake / 15 degrees (rms)
    holds: tuple[tuple[float, float], ...] = ()  # (start, end) seconds within the shot where the camera holds still
    objects: int = 0  # small discs and squares moving slowly in front (the plain wall's)


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str  # one of KINDS
    size: tuple[int, int]  # (width, height), even
    rate: str  # "25", "30000/1001", "24"
    shots: tuple[Shot, ...]
    seed: int = 0
    noise: float = 1.5  # sensor noise, rms in 8-bit levels, on luma, new every frame

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.shots)

    @property
    def fps(self) -> float:
        return float(Fraction(self.rate))

    @property
    def frames(self) -> int:
        return sum(shot_frames(self))


def shot_frames(spec: Spec) -> list[int]:
    """Frames per shot: shot boundaries at rounded multiples of the frame time."""
    r, ends, out, start = Fraction(spec.rate), 0.0, [], 0
    for s in spec.shots:
        ends += s.seconds
        end = _frame(ends, r)
        out.append(end - start)
        start = end
    return out


# --- drawing specs ---------------------------------------------------------------------------------

def _move(rng: random.Random, kind: str, photo: str, seconds: float) -> Shot:
    if kind == "zoom-in":
        return Shot(photo, seconds, zoom=round(rng.uniform(0.001, 0.004), 5))
    if kind == "zoom-out":
        return Shot(photo, seconds, zoom=-round(rng.uniform(0.001, 0.004), 5))
    if kind == "pan":
        speed, angle = rng.uniform(0.5, 3.0), math.radians(rng.uniform(-25, 25) + rng.choice([0, 180]))
        return Shot(photo, seconds, pan=(round(speed * math.cos(angle), 3), round(speed * math.sin(angle), 3)))
    if kind == "rotate":
        return Shot(photo, seconds, turn=round(rng.choice([-1, 1]) * rng.uniform(0.05, 0.2), 4))
    if kind == "shake":
        drift = rng.uniform(0.0, 0.5)
        return Shot(photo, seconds, shake=round(rng.uniform(2.0, 5.0), 2),
                    pan=(round(drift * rng.choice([-1, 1]), 3), round(rng.uniform(-0.2, 0.2), 3)))
    raise ValueError(kind)


def draw(kind: str, seed: int, size: tuple[int, int], rate: str, seconds: float, photos: tuple[str, ...] = (),
         name: str | None = None) -> Spec:
    """A spec of one motion kind whose numbers are drawn by `random.Random(seed)` within the kind's
    ranges (photos: the ones to use, else drawn from PHOTOS)."""
    rng = random.Random(seed)
    photos = photos or tuple(rng.sample(PHOTOS, 2))
    if kind in ("zoom-in", "zoom-out", "pan", "rotate", "shake"):
        shots = (_move(rng, kind, photos[0], seconds),)
    elif kind == "still-stretch":  # holds of 1-3 s where the camera stops, between slow moves (zoom and pan)
        where = rng.choice(["start", "middle", "end", "start+end", "start+middle+end"])
        holds, parts = [], where.split("+")
        budget = seconds * (0.65 if len(parts) > 1 else 0.45)
        lengths = [round(min(rng.uniform(1.0, 3.0), budget / len(parts)), 2) for _ in parts]
        for part, length in zip(parts, lengths):
            if part == "start":
                holds.append((0.0, length))
            elif part == "end":
                holds.append((round(seconds - length, 2), seconds))
            else:
                mid = round(seconds / 2 - length / 2, 2)
                holds.append((mid, round(mid + length, 2)))
        move = _move(rng, "pan", photos[0], seconds)
        shots = (dataclasses.replace(move, pan=(move.pan[0] / 2, move.pan[1] / 2),
                                     zoom=round(rng.uniform(0.0005, 0.002), 5), holds=tuple(holds)),)
    elif kind == "cut":
        at = round(seconds * rng.uniform(0.4, 0.6), 2)
        a, b = rng.sample(["zoom-in", "zoom-out", "pan", "rotate"], 2)
        shots = (_move(rng, a, photos[0], at), _move(rng, b, photos[1], round(seconds - at, 2)))
    elif kind == "plain-wall":
        shots = (Shot(WALL, seconds, objects=rng.randint(3, 5)),)
    else:
        raise ValueError(kind)
    tag = "-".join(p.split("_")[0] for p in dict.fromkeys(s.photo for s in shots))
    return Spec(name or f"syn-{kind.replace('-', '')}-{tag}", kind, size, rate, shots, seed)


def scaled(spec: Spec, size: tuple[int, int] | None = None, seconds: float | None = None) -> Spec:
    """The same footage at another size and length (tests: small and short). Times (shots, holds)
    scale with the length; pans and shakes with the width; zooms and rolls per frame stay."""
    size = size or spec.size
    t = (seconds / spec.seconds) if seconds else 1.0
    px = size[0] / spec.size[0]
    shots = tuple(dataclasses.replace(
        s, seconds=round(s.seconds * t, 4), pan=(s.pan[0] * px, s.pan[1] * px), shake=s.shake * px,
        holds=tuple((round(a * t, 4), round(b * t, 4)) for a, b in s.holds)) for s in spec.shots)
    return dataclasses.replace(spec, size=size, shots=shots)


# the corpus's synthetic originals (shares.originals): every kind, at share-like sizes and rates
SPECS = (
    draw("zoom-in", 11, (854, 480), "30000/1001", 6.0, ("astronaut",), "syn-zoomin-astronaut"),
    draw("zoom-out", 12, (960, 540), "25", 5.0, ("coffee",), "syn-zoomout-coffee"),
    draw("pan", 13, (1280, 720), "25", 8.0, ("hubble_deep_field",), "syn-pan-hubble"),
    draw("rotate", 14, (854, 480), "24", 6.0, ("rocket",), "syn-rotate-rocket"),
    draw("shake", 15, (640, 360), "30000/1001", 6.0, ("chelsea",), "syn-shake-chelsea"),
    draw("still-stretch", 30, (960, 540), "25", 8.0, ("camera",), "syn-still-camera"),  # start, middle, end
    draw("cut", 17, (960, 540), "24", 7.0, ("astronaut", "rocket"), "syn-cut-astronaut-rocket"),
    draw("plain-wall", 18, (960, 720), "25", 6.0, (), "syn-wall-objects"),  # 4:3: shared inside side bars
)


# --- rendering -------------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def photo(name: str) -> np.ndarray:
    """A photograph scikit-image's wheel ships, as float32 RGB (H, W, 3) in 0..255 (read-only)."""
    if name not in PHOTOS:
        raise ValueError(f"{name}: not one of the bundled photographs {PHOTOS}")
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3], dtype=np.float32)
    img.setflags(write=False)
    return img


def _wall(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A plain wall: one colour, lit from one side (a smooth fall-off) and a faint, smooth blotchiness."""
    from scipy import ndimage

    base = np.array(rng.choice([[205, 196, 178], [188, 196, 200], [214, 206, 190], [170, 176, 160]]), np.float32)
    lx, ly = rng.uniform(-0.3, 1.3), rng.uniform(-0.5, 0.2)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    d2 = ((x / w - lx) ** 2 + (y / h - ly) ** 2 * (h / w) ** 2)
    light = 1.0 - 0.18 * d2 / d2.max()
    blotch = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), sigma=max(h, w) / 40)
    blotch *= 2.0 / max(float(blotch.std()), 1e-6)  # about 2 levels rms
    return np.clip(base[None, None, :] * light[..., None] + blotch[..., None], 0, 255).astype(np.float32)


@dataclass
class _Object:
    disc: bool
    r: float  # radius (half side for a square), px
    colour: np.ndarray
    pos: np.ndarray  # (x, y) at motion time 0
    vel: np.ndarray  # px per frame


def _objects(rng: np.random.Generator, n: int, w: int, h: int) -> list[_Object]:
    palette = [[40, 60, 150], [170, 40, 40], [30, 120, 60], [60, 50, 45], [220, 160, 30], [120, 40, 130]]
    out = []
    for k in rng.permutation(len(palette))[:n]:
        r = float(rng.uniform(0.02, 0.05) * h)
        speed, angle = rng.uniform(0.4, 1.5) * w / 960, rng.uniform(0, 2 * np.pi)
        out.append(_Object(bool(rng.random() < 0.5), r, np.array(palette[k], np.float32),
                           np.array([rng.uniform(r + 2, w - r - 2), rng.uniform(r + 2, h - r - 2)]),
                           np.array([speed * np.cos(angle), speed * np.sin(angle)])))
    return out


def _bounce(p: float, lo: float, hi: float) -> float:
    """Position on a segment [lo, hi] of a point moving freely to p, reflected at the ends."""
    span = hi - lo
    q = (p - lo) % (2 * span)
    return lo + (q if q <= span else 2 * span - q)


def _draw_objects(img: np.ndarray, objects: list[_Object], tau: float) -> None:
    h, w = img.shape[:2]
    for o in objects:  # anti-aliased: coverage of a pixel by the shape, with a one-pixel soft edge
        x = _bounce(o.pos[0] + o.vel[0] * tau, o.r + 1, w - o.r - 2)
        y = _bounce(o.pos[1] + o.vel[1] * tau, o.r + 1, h - o.r - 2)
        x0, x1, y0, y1 = int(x - o.r - 2), int(x + o.r + 3), int(y - o.r - 2), int(y + o.r + 3)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        if o.disc:
            a = np.clip(o.r + 0.5 - np.hypot(xx - x, yy - y), 0, 1)
        else:
            a = np.clip(o.r + 0.5 - np.abs(xx - x), 0, 1) * np.clip(o.r + 0.5 - np.abs(yy - y), 0, 1)
        patch = img[y0:y1, x0:x1]
        patch += a[..., None] * (o.colour[None, None, :] - patch)


def _frame(seconds: float, rate: Fraction) -> int:
    return round(Fraction(seconds).limit_denominator(10**6) * rate)


def _motion_time(shot: Shot, n: int, rate: Fraction) -> np.ndarray:
    """Per frame of the shot: its motion time (frames the camera has moved), which stops in holds."""
    held = np.zeros(n, bool)
    for a, b in shot.holds:
        held[_frame(a, rate):_frame(b, rate)] = True
    tau = np.zeros(n)
    for j in range(1, n):
        tau[j] = tau[j - 1] + (0.0 if held[j] else 1.0)
    return tau


def _jitter(rng: np.random.Generator, n: int, frames_smooth: float) -> np.ndarray:
    """Smooth random jitter with unit rms: white noise through a Gaussian of `frames_smooth` frames."""
    from scipy import ndimage

    x = ndimage.gaussian_filter1d(rng.standard_normal(n + 40), frames_smooth, mode="reflect")[20:20 + n]
    return (x - x.mean()) / max(float(x.std()), 1e-9)


def camera(shot: Shot, tau: np.ndarray, rng: np.random.Generator):
    """Per frame: (scale, angle in radians, shift (x, y)) of the map from output pixels, about the
    frame's centre, to a picture in output-pixel units (a scale < 1: the content looks bigger)."""
    n = len(tau)
    scale = (1.0 + shot.zoom) ** (-tau)
    angle = np.radians(shot.turn) * tau
    shift = np.stack([shot.pan[0] * tau, shot.pan[1] * tau], 1)
    if shot.shake:  # hand-held: a smooth jitter (about 0.15 s) of the position and a little of the roll
        # jitter follows motion time too, so that a hold is a still
        k = np.clip(np.round(tau).astype(int), 0, n - 1)
        jx, jy, jr = (_jitter(rng, n, 4.0)[k] for _ in range(3))
        shift = shift + shot.shake * np.stack([jx, jy], 1)
        angle = angle + np.radians(shot.shake / 15) * jr
    return scale, angle, shift


def render(spec: Spec) -> Iterator[np.ndarray]:
    """The spec's frames, uint8 RGB (H, W, 3), in order."""
    from scipy import ndimage

    w, h = spec.size
    rate = Fraction(spec.rate)
    rng = np.random.default_rng(spec.seed)
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], float) - centre
    for shot, n in zip(spec.shots, shot_frames(spec)):
        tau = _motion_time(shot, n, rate)
        scale, angle, shift = camera(shot, tau, rng)
        if shot.photo == WALL:
            pic = _wall(rng, w, h)
            static = not (shot.zoom or shot.turn or shot.shake or any(shot.pan))
        else:
            pic, static = photo(shot.photo), False
        objects = _objects(rng, shot.objects, w, h)
        if not static:
            # where the frame's corners land, over the whole shot, in output-pixel units: the largest
            # picture scale (picture px per output px) that keeps them all inside, centred
            c, s = np.cos(angle), np.sin(angle)
            qx = scale[:, None] * (c[:, None] * corners[None, :, 0] - s[:, None] * corners[None, :, 1]) + shift[:, :1]
            qy = scale[:, None] * (s[:, None] * corners[None, :, 0] + c[:, None] * corners[None, :, 1]) + shift[:, 1:]
            off = -np.array([qx.max() + qx.min(), qy.max() + qy.min()]) / 2
            k = min((pic.shape[1] - 3) / (qx.max() - qx.min()), (pic.shape[0] - 3) / (qy.max() - qy.min()))
            if k < 0.95:  # a picture smaller than the frame: upscaled once (cubic) so bilinear sampling is ~1:1
                f = min(6.0, 1.0 / k)
                pic = np.clip(ndimage.zoom(pic, (f, f, 1), order=3), 0, 255).astype(np.float32)
                k = min((pic.shape[1] - 3) / (qx.max() - qx.min()), (pic.shape[0] - 3) / (qy.max() - qy.min()))
            channels = [np.ascontiguousarray(pic[..., ch]) for ch in range(3)]
            pc = np.array([(pic.shape[1] - 1) / 2, (pic.shape[0] - 1) / 2])
        for j in range(n):
            if static:
                frame = pic.copy()
            else:
                # picture (x, y) = pc + k * (scale * R(angle) @ (out - centre) + shift + off); in (row, col)
                c, s = math.cos(angle[j]), math.sin(angle[j])
                # on (row, col): y' = s x + c y, x' = c x - s y
                m = k * scale[j] * np.array([[c, s], [-s, c]])
                t = np.array([pc[1], pc[0]]) + k * (shift[j, ::-1] + off[::-1]) - m @ centre[::-1]
                frame = np.empty((h, w, 3), np.float32)
                for ch in range(3):
                    ndimage.affine_transform(channels[ch], m, offset=t, output_shape=(h, w), output=frame[..., ch],
                                             order=1, mode="nearest")
            _draw_objects(frame, objects, tau[j])
            # seeded sensor noise on every frame (held stills too: distinct frames, so one hash per frame)
            frame += spec.noise * rng.standard_normal((h, w, 1), dtype=np.float32)
            yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def path(spec: Spec, folder: Path) -> Path:
    """The cached file of a spec: its name and a digest of its recipe."""
    digest = hashlib.sha1(repr((spec, RENDER_VERSION, ENCODER)).encode()).hexdigest()[:10]
    return Path(folder) / f"{spec.name}-{digest}.mp4"


def make(ffmpeg, spec: Spec, folder: Path) -> Path:
    """Render and encode `spec` into `folder` (atomically: a temporary file, then a rename), or
    reuse the file made before. `ffmpeg`: the binary's path, or uvssm's FFmpeg."""
    out = path(spec, folder)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    binary = getattr(ffmpeg, "path", ffmpeg)
    w, h = spec.size
    fd, part = tempfile.mkstemp(prefix=out.stem + ".", suffix=".part.mp4", dir=out.parent)
    os.close(fd)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([binary, "-nostdin", "-hide_banner", "-v", "error", "-f", "rawvideo", "-pix_fmt",
                                 "rgb24", "-s", f"{w}x{h}", "-framerate", spec.rate, "-i", "pipe:0", *ENCODER,
                                 "-f", "mp4", "-y", part], stdin=subprocess.PIPE, stderr=err)
        try:
            for frame in render(spec):
                proc.stdin.write(frame.tobytes())
            proc.stdin.close()
        except BaseException:
            proc.kill()
            proc.wait()
            Path(part).unlink(missing_ok=True)
            raise
        if proc.wait():
            err.seek(0)
            Path(part).unlink(missing_ok=True)
            raise RuntimeError(f"ffmpeg encoding {spec.name}: {err.read().decode(errors='replace')[-2000:]}")
    os.replace(part, out)
    return out
