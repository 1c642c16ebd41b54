"""`dataset_fingerprint`: what identifies the images of a dataset, for a domain classifier's card and cache key.

A domain classifier (`sagan_tf.evaluation.classifiers`) is only meaningful for the images it was trained on, so its card
records the dataset's fingerprint and the classifier is refused for a dataset with another one:

- an image folder ("folder:<path>"): a SHA-256 of the sorted list of its usable images (path relative to the folder,
  size in bytes, class label) and of its class names; moving the folder keeps it, adding, removing, renaming or
  re-encoding an image changes it.
- a TFDS dataset: its name and version (TFDS versions change when the data changes).
- the embedded synthetic dataset: its name (its images are a pure function of their index and seed).
"""


def dataset_fingerprint(name, data_dir=None):
    """The identity of the images of dataset `name` (a `sagan_tf.data` name or `Dataset`) as a JSON-able dict.

    Args:
        name: "synthetic", a TFDS name or "folder:<path>", or a resolved `sagan_tf.data.Dataset` (whose folder
            scan, and fingerprint, are reused).
        data_dir: TFDS data directory, or the base of a relative folder path.

    Returns:
        {"kind": "folder", "path", "num_images", "classes", "sha256"}, {"kind": "tfds", "name", "version"}
        or {"kind": "synthetic", "name"} (`sagan_tf.data.Dataset.fingerprint`). `fingerprint_key` picks the part
        that must match.

    Raises:
        DatasetError: an unknown name, a missing folder or a folder without usable images.
    """
    from sagan_tf import data

    return data.resolve(name, data_dir).fingerprint()


def fingerprint_key(fingerprint):
    """The part of a fingerprint that identifies the images (a folder's path may change; its contents may not)."""
    if fingerprint.get("kind") == "folder":
        return {"kind": "folder", "sha256": fingerprint.get("sha256")}
    return dict(fingerprint)


def describe_fingerprint(fingerprint):
    """A short readable form, e.g. "folder /data/icons (2318 images, sha256 3f2a9c1b...)" or "tfds cifar10 3.0.2"."""
    kind = fingerprint.get("kind")
    if kind == "folder":
        return (f"folder {fingerprint.get('path')} ({fingerprint.get('num_images')} images, sha256 "
                f"{str(fingerprint.get('sha256'))[:12]}...)")
    if kind == "tfds":
        return f"tfds {fingerprint.get('name')} {fingerprint.get('version')}"
    return f"{kind} {fingerprint.get('name')}"


__all__ = ["dataset_fingerprint", "fingerprint_key", "describe_fingerprint"]
