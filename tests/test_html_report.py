"""`emolab report`: one self-contained HTML page with every step in log order, rendered by a
real browser (headless Chromium) with every figure loaded."""

import os
import re
import shutil
import subprocess

import pytest

from emolab import html_report
from emolab.session import Session

CHECK = (
    "<script>window.addEventListener('load',function(){var i=document.images,n=0;"
    "for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0)n++;}"
    "document.title='loaded '+n+' of '+i.length;});</script>"
)


def chromium() -> str:
    """The browser, or a skip saying how to install it (a failure in CI, which installs it)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    msg = "headless Chromium not found: install it (Debian/Ubuntu: apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg + "; CI must run the browser test (.ci/run installs it)")
    pytest.skip(msg)


def test_every_step_in_log_order_self_contained(analysed_session_dir, tmp_path):
    s = Session.open(analysed_session_dir)
    page = html_report.write(s, tmp_path / "r.html").read_text(encoding="utf-8")
    seqs = [int(x) for x in re.findall(r'<section id="step-(\d+)">', page)]
    assert seqs == [e["seq"] for e in s.steps()]
    kinds = re.findall(r"<h2>\d+\. (\w+)", page)
    assert kinds == ["extract", "layers", "heads", "align", "steer"]
    imgs = re.findall(r'<img src="([^"]+)"[^>]*data-figure="([^"]+)"', page)
    assert sorted(n for _, n in imgs) == ["align", "cosines", "heads-joy", "layers"]
    assert all(src.startswith("data:image/png;base64,") for src, _ in imgs)
    assert not re.search(r"(src|href)=\"(https?:)?//", page) and "<script" not in page
    assert "replayable here" in page and "Peak layer per method" in page
    assert "Generations" in page  # the steer step's texts
    norms = [int(n) for n in re.findall(r"<td>mean_resid_norm/L(\d+)</td>", page)]
    assert len(norms) > 2 and norms == sorted(norms)  # L2 before L10: numbers read as numbers


def test_a_replay_says_whether_it_matched(analysed_session_dir, tmp_path):
    from emolab.steps.replay import replay

    src = tmp_path / "orig"
    shutil.copytree(analysed_session_dir, src)
    # replay only the extract + layers part to keep it quick: cut the log after step 2
    log = (src / "log.jsonl").read_text().splitlines()
    (src / "log.jsonl").write_text(
        "\n".join(x for x in log if '"seq": 1,' in x or '"seq": 2,' in x) + "\n"
    )
    new, cmp = replay(src, tmp_path / "rep")
    page = html_report.render(new)
    assert f"Replay of {src.resolve()}" in page
    if cmp.ok:
        assert page.count(">yes<") == 2
    else:
        assert ">no: " in page


def test_cli_report(run_cli, analysed_session_dir, tmp_path):
    r = run_cli("report", analysed_session_dir, "--out", tmp_path / "x.html")
    assert r.exit_code == 0 and (tmp_path / "x.html").is_file()
    r = run_cli("report", tmp_path / "missing")
    assert r.exit_code == 2 and "no such session" in r.output


def test_chromium_renders_every_figure(analysed_session_dir, tmp_path):
    browser = chromium()
    path = html_report.write(Session.open(analysed_session_dir), tmp_path / "report.html")
    probe = tmp_path / "probe.html"
    probe.write_text(path.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"))
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(
        [*args, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    n = len(re.findall(r"<img ", path.read_text(encoding="utf-8")))
    assert n == 4
    assert f"<title>loaded {n} of {n}</title>" in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*args, "--window-size=1000,2600", f"--screenshot={shot}", path.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    from matplotlib.image import imread

    img = imread(shot)[..., :3]
    assert img.shape[0] >= 2000
    dark = (img.mean(axis=2) < 0.5).mean()
    colour = (img.max(axis=2) - img.min(axis=2) > 0.2).mean()
    assert img.std() > 0.05 and dark > 0.005 and colour > 0.005, (img.std(), dark, colour)
