"""`uvssm report --html` in a real headless Chromium (Debian's, driven by Playwright through its path): the page
loads with no console error and no request leaving the file, shows every model's Table-2 row with the numbers
of table2.parquet, its slider moves the before/after split, and a screenshot of it is not blank."""

from __future__ import annotations

import shutil
import subprocess
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


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
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
        shot = tmp_path / "page.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert errors == []
    assert all(url.startswith(("file://", "data:")) for url in requests), requests
    from PIL import Image

    with Image.open(shot) as im:
        rgb = np.asarray(im.convert("RGB"))
    assert rgb.shape[0] > 900 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 500  # tables, charts, crops
