"""Screenshot of the studio's step 3 on a trained place (issue #21): the top-down map with a two-click path.

Copies a scene folder into a fresh studio workspace's library, opens the studio in Debian's Chromium
(Playwright), loads the scene, clicks the map twice (where the first photos and the photos a third of the way
round were taken) and saves the page, the map and the keyframes to bench/out/place-studio/.

    nice -n 10 .venv/bin/python bench/place_studio_shot.py /tmp/fox-scene
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OUT = REPO / "bench" / "out" / "place-studio"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path)
    args = parser.parse_args(argv)
    import numpy as np
    from playwright.sync_api import sync_playwright

    import app
    from scenes.scene import load_scene
    from vista_core.files import read_json

    root = Path(tempfile.mkdtemp(prefix="place-studio-"))
    shutil.copytree(args.scene, root / "library" / "place")
    demo = app.launch_app(root, block=False, quiet=True)
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.set_default_timeout(600_000)
            page.goto(demo.local_url)
            page.wait_for_selector("#session :text('Session workspace')")
            page.get_by_label("…or load a scene / posed-dataset folder (inside the workspace)").fill("library/place")
            page.get_by_role("button", name="Load folder").click()
            page.wait_for_selector("#notice :text('trained scene')")
            page.wait_for_selector("#map img", state="visible")
            [workspace] = [p for p in (root / "sessions").iterdir() if p.is_dir()]
            mapping = read_json(workspace / "path" / "map.json", "map")
            capture = load_scene(root / "library" / "place").capture.positions.double().numpy()
            centre, right, forward = (np.array(mapping[k]) for k in ("centre", "right", "forward"))
            size, upp = mapping["size"], mapping["units_per_pixel"]
            image = page.locator("#map img")
            box = image.bounding_box()
            for n, index in enumerate((0, len(capture) // 3)):
                d = capture[index] - centre
                x, y = d @ right / upp + size[0] / 2, -(d @ forward) / upp + size[1] / 2
                scale = box["width"] / size[0]
                image.click(position={"x": x * scale, "y": y * scale})
                page.wait_for_selector("#notice :text('First keyframe placed')" if n == 0 else
                                       "#notice :text('Keyframe 2 added')")
            page.wait_for_timeout(3000)
            page.locator("#map").scroll_into_view_if_needed()
            page.screenshot(path=str(OUT / "studio-path.png"), full_page=True)
            page.locator("#map").screenshot(path=str(OUT / "studio-map.png"))
            shutil.copy(workspace / "path" / "keyframes.json", OUT / "keyframes.json")
            shutil.copy(workspace / "path" / "map.png", OUT / "map.png")
            browser.close()
    finally:
        demo.close()
    print(f"screenshots in {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
