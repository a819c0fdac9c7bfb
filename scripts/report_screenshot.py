"""Render verification.html in headless Chromium: the README's screenshot, and the browser test.

    python scripts/report_screenshot.py [OUT.png]    (default docs/verification_report.png)

builds keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3)), verifies it layer
by layer in eval and train mode, writes the report and takes its screenshot. Needs the Debian
`chromium` package (`make test-browser` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(html: Path, *action: str, size: str = "1280,1800") -> subprocess.CompletedProcess:
    """Chromium with a throwaway profile on a local file (nothing else is loaded)."""
    with tempfile.TemporaryDirectory(prefix="tf2torch-chromium-") as profile:
        command = [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}", *action, html.as_uri()]
        return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


def dump_dom(html: Path) -> str:
    return run_chromium(html, "--dump-dom").stdout


def screenshot(html: Path, png: Path) -> Path:
    run_chromium(html, f"--screenshot={png.resolve()}")
    return png


def mobilenet_report(work: Path) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    import tf2torch

    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    path = work / "MobileNetV2.keras"
    model.save(path)
    result = tf2torch.convert(str(path))
    eval_report = result.verify_layers(keras_model=model, fp64=True)
    train_report = result.verify_layers(keras_model=model, training=True, fp64=True)
    html = work / "verification.html"
    eval_report.save_html(html, train_report)
    return html


def main() -> int:
    png = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "verification_report.png"
    if chromium() is None:
        print("chromium not found: apt-get install -y chromium (or make test-browser)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tf2torch-report-") as work:
        screenshot(mobilenet_report(Path(work)), png)
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
