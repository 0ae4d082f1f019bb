"""Safe defaults: no pickle, weights only from folders the user names, the app on 127.0.0.1 by default.

The source checks read the project's own code with `ast`, so a new `torch.load` without
`weights_only=True`, a `pickle` import or a hub download shows up here the day it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

SOURCES = sorted([*REPO.joinpath("scenes").rglob("*.py"), *REPO.joinpath("render").rglob("*.py"),
                  *REPO.joinpath("guidance").rglob("*.py"), *REPO.joinpath("vista").rglob("*.py"),
                  *REPO.joinpath("vista_core").rglob("*.py"), *REPO.joinpath("vista_studio").rglob("*.py"),
                  REPO / "app.py"])
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal"}
HUB_CALLS = {"hf_hub_download", "snapshot_download", "cached_download", "load_state_dict_from_url",
             "download_url_to_file"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            yield node, owner, name


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno}: imports {a.name}" for a in node.names
                      if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"{where}:{node.lineno}: imports from {node.module}")
    for call, owner, name in _calls(tree):
        at = f"{where}:{call.lineno}"
        if owner == "torch" and name == "load" and _keyword(call, "weights_only") is not True:
            found.append(f"{at}: torch.load without weights_only=True")
        if owner in ("np", "numpy") and name == "load" and _keyword(call, "allow_pickle") is True:
            found.append(f"{at}: numpy.load with allow_pickle=True")
        if name == "from_pretrained" and _keyword(call, "local_files_only") is not True:
            found.append(f"{at}: from_pretrained without local_files_only=True (could download weights)")
        if name in HUB_CALLS:
            found.append(f"{at}: {name} downloads weights")
    return found


def test_sources_are_found():
    assert len(SOURCES) > 20 and REPO / "scenes" / "train.py" in SOURCES


def test_no_pickle_and_no_downloads_in_the_sources():
    problems = [p for path in SOURCES for p in _problems(path)]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_what_it_claims(tmp_path):
    bad = tmp_path / "unsafe_example.py"
    bad.write_text("import pickle\nimport torch\nfrom diffusers import X\n"
                   "torch.load('a.pt')\nX.from_pretrained('org/model')\nhf_hub_download('x', 'y')\n"
                   "torch.load('b.pt', weights_only=True)\nX.from_pretrained('f', local_files_only=True)\n")
    assert len(_problems(bad)) == 4, _problems(bad)


def test_scene_folders_hold_only_json_and_safetensors(tiny_scene):
    suffixes = {p.suffix for p in tiny_scene.rglob("*") if p.is_file()}
    names_without_suffix = {p.name for p in tiny_scene.rglob("*") if p.is_file() and not p.suffix}
    assert suffixes <= {".json", ".safetensors", ""}, suffixes
    assert names_without_suffix <= {"LATEST"}, names_without_suffix


def test_no_temp_files_left_in_a_finished_scene(tiny_scene):
    assert not [p for p in tiny_scene.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".vista")]


def test_the_app_listens_on_localhost_unless_asked():
    import vista
    from vista.studio import listen_address

    args = vista.build_parser().parse_args(["app"])
    assert listen_address(args.host, args.share_lan) == "127.0.0.1"
    args = vista.build_parser().parse_args(["app", "--share-lan"])
    assert listen_address(args.host, args.share_lan) == "0.0.0.0"


def test_app_launch_defaults_to_localhost_and_bounded_uploads():
    import inspect

    app = pytest.importorskip("app")
    from vista_studio import workspace as wsp

    assert inspect.signature(app.launch_app).parameters["host"].default == "127.0.0.1"
    assert 0 < wsp.MAX_PHOTOS <= 1000 and 0 < wsp.MAX_UPLOAD_BYTES <= 8 * 1024**3
    assert "max_file_size=wsp.MAX_UPLOAD_BYTES" in inspect.getsource(app.launch_app)
