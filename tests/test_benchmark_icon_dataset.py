"""benchmarks/icon_dataset.py on a fake unpacked icon theme (no apt): selection, deduplication, rendering, notes."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks import icon_dataset
from sagan_tf import data


def icon(path, size, colour, shape="square"):
    """An RGBA icon: a coloured shape on a transparent background."""
    pixels = np.zeros((size, size, 4), np.uint8)
    quarter = size // 4
    if shape == "square":
        pixels[quarter:-quarter, quarter:-quarter] = (*colour, 255)
    else:  # a horizontal bar
        pixels[size // 2 - 2:size // 2 + 2, :] = (*colour, 255)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels, "RGBA").save(path)


@pytest.fixture
def packages(tmp_path, monkeypatch):
    """Two fake packages: {package: (version, root)}, with PACKAGES patched to name their themes."""
    one, two = tmp_path / "pkg-one", tmp_path / "pkg-two"
    theme = one / "usr/share/icons/One"
    icon(theme / "48x48/apps/red.png", 48, (255, 0, 0))
    icon(theme / "32x32/apps/red.png", 32, (250, 0, 0))  # a smaller rendering of the same icon
    os.symlink("red.png", theme / "48x48/apps/red-alias.png")  # an alias: the same file
    icon(theme / "16x16/apps/tiny.png", 16, (0, 0, 255))  # below MIN_SOURCE_SIZE: not taken
    icon(theme / "48x48/apps/blue.png", 48, (0, 0, 255))
    icon(theme / "48x48/apps/green-bar.png", 48, (0, 255, 0), "bar")
    icon(theme / "48x48/status/yellow.png", 48, (255, 255, 0))
    icon(theme / "48x48/status/cyan-bar.png", 48, (0, 255, 255), "bar")
    icon(theme / "48x48/emotes/smile.png", 48, (255, 0, 255))  # a context with too few icons
    os.symlink("nowhere.png", theme / "48x48/status/broken.png")
    other = two / "usr/share/icons/Two/status/64"  # the <context>/<size> layout of elementary-xfce
    icon(other / "red-copy.png", 64, (255, 0, 0))  # the same drawing as One's red: a near-duplicate
    icon(other / "magenta-bar.png", 64, (255, 0, 255), "bar")
    for root in (one, two):
        os.makedirs(root / "usr/share/doc" / root.name)
        (root / "usr/share/doc" / root.name / "copyright").write_text(f"Copyright text of {root.name}\n")
    monkeypatch.setattr(icon_dataset, "PACKAGES", {
        "pkg-one": {"themes": ("One",), "license": "public domain"},
        "pkg-two": {"themes": ("Two",), "license": "LGPL-3+"}})
    return {"pkg-one": ("1.0", str(one)), "pkg-two": ("2:2.0-1", str(two))}


def test_find_icons_takes_the_largest_rendering_once(packages):
    found = icon_dataset.find_icons(packages["pkg-one"][1], ("One",))
    assert [(theme, context, name) for theme, context, name, _ in found] == [
        ("One", "apps", "blue"), ("One", "apps", "green-bar"), ("One", "apps", "red"), ("One", "emotes", "smile"),
        ("One", "status", "cyan-bar"), ("One", "status", "yellow")]
    assert next(path for *_, path in found if path.endswith("red.png")).endswith("48x48/apps/red.png")


def test_build_writes_a_folder_dataset_with_its_notes(packages, tmp_path):
    output = str(tmp_path / "dataset")
    lines = []
    manifest = icon_dataset.build(packages, output, 8, min_per_class=2, near_duplicate_mse=0.001, log=lines.append)
    # red-copy (pkg-two) duplicates red (pkg-one); emotes has one icon, fewer than min_per_class.
    assert manifest["classes"] == {"apps": 3, "status": 3}
    assert manifest["left_out_contexts"]["emotes"] == 1 and manifest["num_images"] == 6
    assert sorted(os.listdir(os.path.join(output, "status"))) == ["One-cyan-bar.png", "One-yellow.png",
                                                                   "Two-magenta-bar.png"]
    info = data.get_info(f"folder:{output}")
    assert info.class_names == ("apps", "status")
    pixels = np.asarray(Image.open(os.path.join(output, "apps", "One-red.png")))
    assert pixels.shape == (8, 8, 3)
    np.testing.assert_array_equal(pixels[0, 0], [255, 255, 255])  # transparency composited over white
    assert pixels[4, 4, 0] > 200 and pixels[4, 4, 1] < 60  # the red square, resized
    readme = open(os.path.join(output, "README.md")).read()
    assert "6 images" in readme and "pkg-two 2:2.0-1: 1 images, LGPL-3+" in readme
    license_text = open(os.path.join(output, "LICENSE")).read()
    assert "Copyright text of pkg-one" in license_text and "Copyright text of pkg-two" in license_text
    stored = json.load(open(os.path.join(output, icon_dataset.MANIFEST)))
    assert stored["settings"] == icon_dataset.settings_for(packages, 8, 2, 0.001)
    assert {f["file"] for f in stored["files"]} == {
        f"{c}/{n}" for c in ("apps", "status") for n in os.listdir(os.path.join(output, c))}
    assert any("6 images of 8x8 in 2 classes" in line for line in lines)


def test_main_is_idempotent(packages, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(icon_dataset, "download_and_unpack", lambda names, cache, log=print: packages)
    built = []
    original = icon_dataset.build
    monkeypatch.setattr(icon_dataset, "build", lambda *a, **k: built.append(1) or original(*a, **k))
    args = [f"--output_dir={tmp_path / 'out'}", "--image_size=8", "--min_per_class=2", f"--cache_dir={tmp_path}"]
    assert icon_dataset.main(args) == 0 and icon_dataset.main(args) == 0
    assert len(built) == 1 and "is up to date (6 images)" in capsys.readouterr().out
    assert icon_dataset.main([*args, "--force"]) == 0 and len(built) == 2
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["classes"] == {"apps": 3, "status": 3} and summary["packages"] == {"pkg-one": "1.0",
                                                                                       "pkg-two": "2:2.0-1"}


def test_too_few_classes_is_an_error(packages, tmp_path):
    with pytest.raises(icon_dataset.BuildError, match="lower --min_per_class"):
        icon_dataset.build(packages, str(tmp_path / "x"), 8, min_per_class=10, near_duplicate_mse=0.001)
