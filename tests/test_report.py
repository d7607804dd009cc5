"""spotfit.report (the HTML page) and the ``spotfit link`` / ``spotfit report`` commands."""
import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spotfit
from spotfit import io as sio
from spotfit.cli import main

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def sim():
    return spotfit.simulate_smlm("grid", frames=1500, shape=(48, 48), count=6, mean_on=4.0, mean_off=150.0,
                                 seed=7)


def images(page):
    return re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)


def test_report_holds_every_section_with_embedded_figures(sim, tmp_path):
    out = tmp_path / "report.html"
    page = spotfit.report(sim.locs, out, drift=sim.drift, pixel_size_nm=100.0, title="run 1")
    assert out.read_text(encoding="utf-8") == page
    for section in ("Localizations per frame", "Photons and uncertainty", "NeNA precision", "Drift",
                    "FRC resolution", "Rendered image", "after correction", "before correction", "run 1"):
        assert section in page, section
    pngs = images(page)
    assert len(pngs) == 6
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "<script" not in page and "http" not in page.split("<body>")[1].split("spotfit ")[0]   # self-contained
    # The numbers quoted are the API's on the corrected table (drift subtracted).
    corrected = sim.locs.assign(x=sim.locs.x - sim.drift.x.to_numpy()[sim.locs.frame],
                                y=sim.locs.y - sim.drift.y.to_numpy()[sim.locs.frame])
    nena = spotfit.nena(corrected)
    assert f"{nena.precision:.3g} px" in page
    assert not list(tmp_path.glob(".*.tmp"))


def test_report_without_drift_or_pixel_size_says_what_is_missing(sim):
    page = spotfit.report(sim.locs)
    assert "No drift table given" in page and "FRC not computed" in page
    assert "after correction" not in page
    assert len(images(page)) == 4


def test_report_with_a_corrected_table(sim):
    corrected = sim.locs.assign(x=sim.locs.x - sim.truth.drift_x, y=sim.locs.y - sim.truth.drift_y)
    page = spotfit.report(sim.locs, corrected=corrected)
    assert "after correction" in page and "No drift table given" in page


@pytest.mark.parametrize("change,match", [
    (lambda t: t.iloc[:0], "empty"),
    (lambda t: t[t.frame == t.frame.iloc[0]], "one"),
    (lambda t: t.assign(x=np.nan), "NaN"),
])
def test_report_bad_input_writes_nothing(sim, tmp_path, change, match):
    out = tmp_path / "r.html"
    with pytest.raises(ValueError, match=match):
        spotfit.report(change(sim.locs), out)
    assert not list(tmp_path.iterdir())


def test_report_drift_must_cover_the_frames(sim):
    with pytest.raises(ValueError, match="no row for frame"):
        spotfit.report(sim.locs, drift=sim.drift.iloc[:10])


# ------------------------------------------------------------------------------------------------ CLI

@pytest.fixture(scope="module")
def files(sim, tmp_path_factory):
    d = tmp_path_factory.mktemp("post")
    locs = sim.locs.copy()
    locs.attrs = {"spotfit": {"pixel_size_nm": 100.0}}
    sio.save(locs, d / "locs.parquet")
    sim.drift.to_csv(d / "drift.csv", index=False)
    return d


def test_cli_link_writes_the_events(files, sim, tmp_path, capsys):
    out = tmp_path / "events.csv"
    assert main(["link", str(files / "locs.parquet"), "-o", str(out), "-q"]) == 0
    ev = sio.load(out)
    api = spotfit.link(sim.locs)
    assert len(ev) == len(api)
    np.testing.assert_allclose(ev["x"], api["x"], rtol=1e-6)
    assert "events" in capsys.readouterr().out
    out2 = tmp_path / "groups.parquet"
    assert main(["link", str(files / "locs.parquet"), "-o", str(out2), "--groups", "--max-dark-frames", "0",
                 "-q"]) == 0
    g = sio.load(out2)
    assert len(g) == len(sim.locs) and "group" in g


def test_cli_report(files, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(files / "locs.parquet"), "-o", str(out), "--drift", str(files / "drift.csv"),
                 "-q"]) == 0
    page = out.read_text(encoding="utf-8")
    assert "FRC resolution" in page and "after correction" in page   # pixel size from the file


@pytest.mark.parametrize("table", ["empty", "nan", "one_frame", "no_columns"])
def test_cli_bad_input_is_one_line_and_leaves_no_file(sim, tmp_path, capsys, table):
    t = {"empty": sim.locs.iloc[:0], "nan": sim.locs.assign(x=np.nan),
         "one_frame": sim.locs[sim.locs.frame == sim.locs.frame.iloc[0]],
         "no_columns": sim.locs[["frame", "x", "y"]]}[table]
    src = tmp_path / "in.csv"
    sio.save(t, src)
    for cmd, name in (("link", "out.csv"), ("report", "out.html")):
        if (cmd == "link" and table == "one_frame") or (cmd == "report" and table == "no_columns"):
            continue   # one frame links fine (every localization is its own event); the report of frame, x, y
            # only leaves out the histograms and linking, and says so
        code = main([cmd, str(src), "-o", str(tmp_path / name), "-q"])
        err = capsys.readouterr().err
        assert code == 2, (cmd, table, err)
        assert err.count("\n") == 1 and err.startswith("spotfit: error:"), err
        assert not (tmp_path / name).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_cli_unsorted_frames_are_linked(sim, tmp_path):
    src = tmp_path / "shuffled.csv"
    sio.save(sim.locs.sample(frac=1.0, random_state=1), src)
    out = tmp_path / "ev.csv"
    assert main(["link", str(src), "-o", str(out), "-q"]) == 0
    assert len(sio.load(out)) == len(spotfit.link(sim.locs))


def test_cli_usage_errors(files, tmp_path, capsys):
    assert main(["report", str(files / "locs.parquet"), "-o", str(tmp_path / "r.txt"), "-q"]) == 2
    assert main(["link", str(files / "locs.parquet"), "-o", str(tmp_path / "no" / "e.csv"), "-q"]) == 2
    assert main(["link", str(files / "locs.parquet"), "-o", str(tmp_path / "e.csv"), "--radius", "-1", "-q"]) == 2
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------
# the page in a real browser (issue 17): Debian's chromium, headless; .ci/run installs it
# --------------------------------------------------------------------------

def _chromium():
    import os
    import shutil
    found = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                 None)
    if found is None:
        if os.environ.get("SPOTFIT_REQUIRE_BROWSER") == "1":
            raise RuntimeError("SPOTFIT_REQUIRE_BROWSER=1 but there is no chromium (apt-get install chromium)")
        pytest.skip("no chromium for the headless browser test (Debian: apt-get install chromium)")
    return found


def _headless(browser, *args):
    import subprocess
    # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
    run = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--disable-dev-shm-usage", "--no-first-run", "--virtual-time-budget=20000", *args],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def test_report_draws_in_a_headless_browser(sim, tmp_path):
    import os
    from matplotlib.image import imread
    browser = _chromium()
    out = tmp_path / "report.html"
    page = spotfit.report(sim.locs, out, drift=sim.drift, pixel_size_nm=100.0, title="spotfit report: demo")
    # Every figure decodes: a copy of the page with a probe that counts the images the browser drew.
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", "<script>addEventListener('load', () => { const i = [...document."
                                  "images]; document.body.dataset.drawn = i.filter(x => x.complete && "
                                  "x.naturalWidth > 0).length + '/' + i.length; });</script></body>"),
                     encoding="utf-8")
    dom = _headless(browser, "--dump-dom", probe.as_uri())
    drawn = re.search(r'data-drawn="(\d+)/(\d+)"', dom)
    assert drawn is not None, dom[:500]
    assert drawn.group(1) == drawn.group(2) == "6"
    # A broken figure is caught by the same probe.
    broken = tmp_path / "broken.html"
    broken.write_text(probe.read_text(encoding="utf-8").replace("base64,iVBOR", "base64,AAAA", 1), encoding="utf-8")
    assert re.search(r'data-drawn="5/6"', _headless(browser, "--dump-dom", broken.as_uri()))
    # The screenshot shows the page drawn: text, and figures in colour over most of the first screens.
    shot = tmp_path / "report.png"
    _headless(browser, f"--screenshot={shot}", "--window-size=1100,2700", out.as_uri())
    rgb = imread(shot)[..., :3]
    assert rgb.shape[:2] == (2700, 1100)
    not_white = (rgb < 0.94).any(axis=2)
    coloured = rgb.max(axis=2) - rgb.min(axis=2) > 0.25        # the plots' lines, bars and the rendered images
    assert not_white.mean() > 0.05 and coloured.mean() > 0.01
    blank = tmp_path / "blank.png"   # the same page without its figures is far emptier: the check can fail
    text_only = tmp_path / "text.html"
    text_only.write_text(re.sub(r"<img[^>]*>", "", page), encoding="utf-8")
    _headless(browser, f"--screenshot={blank}", "--window-size=1100,2700", text_only.as_uri())
    empty = imread(blank)[..., :3]
    assert (empty.max(axis=2) - empty.min(axis=2) > 0.25).mean() < 0.2 * coloured.mean()
    target = os.environ.get("SPOTFIT_REPORT_SCREENSHOT")        # docs/report_screenshot.png is made this way
    if target:
        import shutil
        shutil.copyfile(shot, target)
