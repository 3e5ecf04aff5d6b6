"""`uvssm report --html` in a real headless Chromium (Debian's, driven by Playwright through its path): the page
loads with no console error and no request leaving the file, shows every model's Table-2 row with the numbers
of table2.parquet, its slider moves the before/after split, and a screenshot of it is not blank."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.harness import run_bench
from benchmarks.options import BenchOptions
from models.inference import InferenceOptions
from models import checkpoint
from models.registry import create_model, model_kwargs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_missing(which=shutil.which, find_spec=importlib.util.find_spec) -> str | None:
    """What the browser test needs and this machine lacks, with how to get it (the skip reason pytest's summary
    shows), or None when it can run."""
    missing = []
    if which("chromium") is None and which("chromium-browser") is None:
        missing.append("Chromium on PATH (`chromium` or `chromium-browser`; Debian/Ubuntu: `sudo apt-get install "
                       "chromium`, as .ci/run does)")
    if find_spec("playwright") is None:
        missing.append("the playwright package (`pip install -e '.[test]'`; it downloads no browser)")
    return f"browser test of report.html not run: needs {' and '.join(missing)}" if missing else None


@pytest.fixture(scope="module")
def results(tmp_path_factory, tiny_reds, ffmpeg) -> Path:
    """A bench of bicubic, a votes-tiny (untrained: the page needs its DFM, not its quality) and outputs
    made by ffmpeg (bilinear), then `uvssm report --html`."""
    root = tmp_path_factory.mktemp("html")
    torch.manual_seed(0)
    checkpoint.save(root / "w" / "votes-tiny.pt", create_model("votes-tiny", 2),
                    {"model": "votes-tiny", "scale": 2, "model_kwargs": model_kwargs("votes-tiny", 2)})
    outputs = root / "bilinear"
    for clip in ("240", "241"):
        (outputs / clip).mkdir(parents=True)
        subprocess.run([ffmpeg.path, "-v", "error", "-i", str(tiny_reds / "LQ_qp28_x2" / clip / "%08d.png"), "-vf",
                        "scale=iw*2:ih*2:flags=bilinear", "-start_number", "0", str(outputs / clip / "%08d.png")],
                       check=True)
    run_bench(BenchOptions(["bicubic", "votes-tiny"], tiny_reds, root / "res", qp=28, weights=[str(root / "w")],
                           outputs=[("bilinear", outputs)], inference=InferenceOptions(device="cpu")))
    done = subprocess.run([sys.executable, "-m", "uvssm", "report", str(root / "res"), "--html"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"page: {root / 'res' / 'report.html'}" in done.stdout
    return root / "res"


def test_the_page_is_one_file_that_needs_nothing_else(results):
    page = (results / "report.html").read_text()
    for outside in ("http://", "https://", "<link", "src=\"/", "src=\"file"):
        assert outside not in page.replace('xmlns="http://www.w3.org/2000/svg"', ""), outside
    assert page.count("<svg") == 2 + 2 * 2  # PSNR and SSIM: bars (1 setting) and curves (2 clips each)
    assert page.count('class="cmp"') == 2  # one saved frame per clip


def test_each_crop_names_its_two_sides_and_outside_outputs_have_no_timing(results):
    page = (results / "report.html").read_text()
    boxes = page.split('class="cmp"')[1:]
    assert len(boxes) == 2
    for box in boxes:  # named on the image: left of the split the selected output (votes-tiny, sorted last), GT right
        tag = re.search(r'<span class="tag tag-left">([^<]*)</span>', box)
        selected = re.search(r' selected>([^<]*)</option>', box)
        assert tag and selected and tag.group(1) == selected.group(1)
        assert re.fullmatch(r"votes-tiny \(\d+\.\d\d dB\)", tag.group(1))
        assert '<span class="tag tag-right">GT</span>' in box
    costs = page[page.index('<table id="costs">'):]
    costs = costs[:costs.index("</table>")]
    row = next(r for r in costs.split("<tr>") if r.startswith('<td class="l">bilinear</td>'))
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[4] == cells[5] == ""  # ms/frame and peak MiB: bench only read the files
    assert cells[6] == "outputs made elsewhere: ms/frame would time reading files"
    # PSNR and SSIM bars, each model minus bicubic
    assert len(re.findall(r'aria-label="[^"]*minus bicubic&#x27;s, per clip', page)) == 2


def test_the_screen_cost_table_leaves_outside_outputs_untimed():
    from rich.console import Console

    from uvssm.display import print_table2

    table = pd.DataFrame([{"dataset": "REDS", "setting": "qp28_x2", "split": "test", "model": m, "clips": 2,
                           "psnr": 30.0, "ssim": 0.9, "paper_psnr": float("nan"), "paper_ssim": float("nan"),
                           "delta_psnr": float("nan"), "delta_ssim": float("nan"), "paper_note": ""}
                          for m in ("votes-tiny", "bilinear")])
    models = pd.DataFrame([{"model": "votes-tiny", "setting": "qp28_x2", "params": 1234, "macs_per_frame": 5e9,
                            "ms_per_frame": 123.4, "peak_mem_mb": 456.0, "device": "cpu", "precision": "fp32"},
                           {"model": "bilinear", "setting": "qp28_x2", "params": float("nan"),
                            "macs_per_frame": float("nan"), "ms_per_frame": 3.2, "peak_mem_mb": 77.0, "device": "cpu",
                            "precision": "external"}])
    console = Console(record=True, width=220)
    print_table2(console, table, models)
    lines = console.export_text().splitlines()
    mine = next(line for line in lines if "bilinear" in line and "qp28_x2" in line and "reading" in line)
    assert "3.2" not in mine and "77" not in mine and "outputs made elsewhere: ms/frame would time reading files" in mine
    assert any("votes-tiny" in line and "123.4" in line and "456" in line for line in lines)


SVG = "{http://www.w3.org/2000/svg}"


def _chart(svg: str) -> tuple[list[str], dict[str, float], list[tuple[float, float]], float | None, str]:
    """(tick labels top to bottom, each label's y, each bar's (top, bottom), the zero line's y, the title)."""
    root = ET.fromstring(svg)
    ticks = [(t.text, float(t.get("y")) - 4) for t in root.iter(f"{SVG}text") if t.get("class") == "ytick"]
    bars = [(float(r.get("y")), float(r.get("y")) + float(r.get("height")))
            for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    zero = [float(z.get("y1")) for z in root.iter(f"{SVG}line") if z.get("class") == "zero"]
    return [t for t, _ in ticks], dict(ticks), bars, (zero[0] if zero else None), root.get("aria-label")


def _clips(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "REDS", "setting": "qp28_x2", "split": "test", "model": m, "clip": c,
                          "psnr": p, "ssim": s} for m, c, p, s in rows])


def test_per_clip_bars_are_differences_to_bicubic_from_zero_on_round_ticks():
    from benchmarks.html_report import _clip_bars

    clips = _clips([("bicubic", "240", 28.73, 0.8000), ("bicubic", "241", 31.42, 0.9000),
                    ("votes-tiny", "240", 28.76, 0.8050), ("votes-tiny", "241", 31.40, 0.8990)])
    psnr, ssim = _clip_bars(clips).replace("</svg>", "</svg>\n").split("\n")[:2]
    # by hand: PSNR differences +0.03 (240) and -0.02 (241): ticks every 0.02 dB from -0.02 to 0.04
    labels, y, bars, zero, title = _chart(psnr)
    assert title == "REDS qp28_x2 test: PSNR minus bicubic's, per clip; above 0: better than bicubic"
    assert sorted(labels, key=float) == ["-0.02", "0.00", "0.02", "0.04"]
    assert zero == pytest.approx(y["0.00"], abs=0.11)
    span = y["-0.02"] - y["0.04"]  # pixels for 0.06 dB
    (top240, bottom240), (top241, bottom241) = bars  # bicubic itself has no bar
    assert bottom240 == pytest.approx(zero, abs=0.11)  # +0.03: up from the zero line, half the axis
    assert (bottom240 - top240) / span == pytest.approx(0.03 / 0.06, abs=2e-3)
    assert top241 == pytest.approx(zero, abs=0.11)  # -0.02: down from it, a third of the axis
    assert (bottom241 - top241) / span == pytest.approx(0.02 / 0.06, abs=2e-3)
    # SSIM differences +0.005 and -0.001: ticks every 0.002 from -0.002 to 0.006
    labels, _, bars, _, _ = _chart(ssim)
    assert sorted(labels, key=float) == ["-0.002", "0.000", "0.002", "0.004", "0.006"] and len(bars) == 2


def test_without_bicubic_bars_start_at_zero_and_curves_get_round_ticks():
    from benchmarks.html_report import _clip_bars, svg_lines

    clips = _clips([("votes-tiny", "240", 28.73, 0.81), ("votes-tiny", "241", 31.45, 0.90)])
    labels, y, bars, zero, title = _chart(_clip_bars(clips).split("</svg>")[0] + "</svg>")
    assert title == "REDS qp28_x2 test: PSNR per clip"
    assert sorted(labels, key=float) == ["0", "10", "20", "30", "40"]  # by hand: 0 to 31.45 in steps of 10
    assert [b for _, b in bars] == [pytest.approx(y["0"], abs=0.11)] * 2
    labels, *_ = _chart(svg_lines({"votes-tiny": ([0, 1, 2], [28.73, 30.10, 31.45])}, "PSNR per frame", "PSNR"))
    assert sorted(labels, key=float) == ["28", "29", "30", "31", "32"]


def test_a_skipped_browser_test_says_what_is_missing_and_how_to_get_it():
    reason = browser_missing(which=lambda name: None, find_spec=lambda name: object())
    assert "Chromium" in reason and "apt-get install chromium" in reason and "playwright" not in reason
    reason = browser_missing(which=lambda name: "/usr/bin/" + name, find_spec=lambda name: None)
    assert "pip install -e '.[test]'" in reason and "Chromium" not in reason
    assert browser_missing(which=lambda name: "/usr/bin/" + name, find_spec=lambda name: object()) is None


@pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")
def test_the_page_in_headless_chromium(results, tmp_path):
    from playwright.sync_api import sync_playwright

    table = pd.read_parquet(results / "table2.parquet").set_index("model")
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)  # a fresh profile of its own
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((results / "report.html").as_uri())
        page.wait_for_load_state("load")
        rows = page.locator("#table2 tr[data-model]")
        shown = {rows.nth(i).get_attribute("data-model"): rows.nth(i).locator("td").all_inner_texts()
                 for i in range(rows.count())}
        assert set(shown) == {"bicubic", "votes-tiny", "bilinear"}
        for model, cells in shown.items():  # PSNR and SSIM as table2.parquet has them
            assert cells[5] == f"{table.loc[model, 'psnr']:.2f}" and cells[6] == f"{table.loc[model, 'ssim']:.4f}"

        box = page.locator(".cmp").first
        before = box.locator("img.top").evaluate("e => e.style.clipPath")
        box.locator("input[type=range]").fill("20")
        after = box.locator("img.top").evaluate("e => e.style.clipPath")
        assert before == "inset(0px 50% 0px 0px)" and after == "inset(0px 80% 0px 0px)"
        box.locator("select").select_option(index=0)  # LQ on the left
        assert box.locator(".left-name").inner_text() == "LQ (nearest)"
        # each side named on the image itself: the chosen output at the top left, GT at the top right
        left, right, image = (box.locator(sel).bounding_box() for sel in (".tag-left", ".tag-right", "img.base"))
        assert box.locator(".tag-left").inner_text() == "LQ (nearest)"
        assert box.locator(".tag-right").inner_text() == "GT"
        assert image["x"] <= left["x"] < left["x"] + left["width"] < image["x"] + image["width"] / 2
        assert image["x"] + image["width"] / 2 < right["x"] < right["x"] + right["width"] <= image["x"] + image["width"]
        shot = tmp_path / "page.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert errors == []
    assert all(url.startswith(("file://", "data:")) for url in requests), requests
    from PIL import Image

    with Image.open(shot) as im:
        rgb = np.asarray(im.convert("RGB"))
    assert rgb.shape[0] > 900 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 500  # tables, charts, crops
