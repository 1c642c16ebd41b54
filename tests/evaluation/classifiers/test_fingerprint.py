"""Dataset fingerprints: a folder's is a hash of its image list (relative paths, sizes, labels) and class names."""

import hashlib
import os

import pytest

from sagan_tf.errors import DatasetError
from sagan_tf.evaluation.classifiers import fingerprint
from tests.tiny import tiny_image_folder


def test_a_folder_fingerprint_is_the_hash_of_its_image_list(tmp_path):
    folder = tiny_image_folder(tmp_path / "images", per_class=2, size=8)
    (tmp_path / "images" / "README.md").write_text("not an image")  # beside the class folders: ignored
    result = fingerprint.dataset_fingerprint(f"folder:{folder}")
    lines = "".join(f"{c}/image_{i:03d}.png\t{os.path.getsize(os.path.join(folder, c, f'image_{i:03d}.png'))}\t{l}\n"
                    for l, c in enumerate(("blue", "red")) for i in range(2))
    expected = hashlib.sha256(b'["blue", "red"]' + lines.encode()).hexdigest()
    assert result == {"kind": "folder", "path": folder, "num_images": 4, "classes": ["blue", "red"],
                      "sha256": expected}
    assert fingerprint.fingerprint_key(result) == {"kind": "folder", "sha256": expected}
    assert "4 images" in fingerprint.describe_fingerprint(result)


@pytest.mark.parametrize("change", ["rename", "rewrite", "add", "relabel"])
def test_any_change_of_the_images_changes_it(tmp_path, change):
    folder = tiny_image_folder(tmp_path / "images", per_class=2, size=8)
    before = fingerprint.dataset_fingerprint(f"folder:{folder}")["sha256"]
    image = os.path.join(folder, "red", "image_000.png")
    if change == "rename":
        os.rename(image, os.path.join(folder, "red", "renamed.png"))
    elif change == "rewrite":
        tiny_image_folder(tmp_path / "bigger", classes=("red",), per_class=1, size=12)
        os.replace(tmp_path / "bigger" / "red" / "image_000.png", image)
    elif change == "add":
        tiny_image_folder(tmp_path / "images", classes=("green",), per_class=1, size=8)
    else:
        os.rename(os.path.join(folder, "red"), os.path.join(folder, "zred"))
    assert fingerprint.dataset_fingerprint(f"folder:{folder}")["sha256"] != before


def test_synthetic_and_unknown_names():
    assert fingerprint.dataset_fingerprint("synthetic") == {"kind": "synthetic", "name": "synthetic"}
    with pytest.raises(DatasetError, match="Unknown dataset"):
        fingerprint.dataset_fingerprint("no_such_dataset")
