"""Builds a real image dataset offline from Debian icon-theme packages: one class per icon context.

Usage:
  python benchmarks/icon_dataset.py                                 # -> ~/.cache/sagan_tf/datasets/debian-icons-32
  python benchmarks/icon_dataset.py --image_size=64 --output_dir=/data/icons64
  python -m training.run --dataset=folder:$HOME/.cache/sagan_tf/datasets/debian-icons-32 --classifier=domain

The images are icons drawn by people (the Oxygen, Tango, GNOME, MATE, elementary-xfce and nuoveXT2 themes), taken
from the Debian packages in `PACKAGES` with `apt-get download` (the only network use: Debian's package mirror) and
unpacked with `dpkg-deb -x`; nothing is installed. A class is a freedesktop icon context (actions, apps, categories,
devices, mimetypes, places, status); contexts with fewer than `--min_per_class` icons are left out.

One image per distinct icon, not one per rendered size: for each (theme, context, icon name) the largest PNG of at
least `MIN_SOURCE_SIZE` pixels is taken, after following symlinks (a theme's aliases of one file count once);
byte-identical files are kept once, and so are near-duplicates (the same drawing in two themes, e.g. MATE's fork of
the GNOME icons): two icons whose 16x16 thumbnails differ by a mean squared error below `--near_duplicate_mse` (on
[0, 1] values) are one icon. Each kept icon is composited over a white background (the folder loader composites
transparency over white too), resized with Lanczos to `--image_size` and written as an RGB PNG to
`<output_dir>/<context>/<theme>-<icon name>.png`: an ordinary `folder:` dataset.

The output folder also receives README.md (how it was built, the counts, the licences), LICENSE (each package's
Debian copyright file) and .manifest.json (package versions, settings, the source file of every image); the folder
loader ignores files beside the class folders. The licences are those of the packages (public domain, LGPL-3+,
GPL-2+/3+, CC-BY-SA; see README.md): the dataset is built on the user's machine and not redistributed by this project.

The script is idempotent: downloads and unpacked packages are cached in `--cache_dir`, and a dataset whose
manifest records the same packages and settings is reported and left alone (`--force` rebuilds it). It prints what it
built, then one JSON line: {"output_dir", "num_images", "classes": {context: count}, "packages": {name: version},
"licenses": {name: licence}}.
"""

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

#: The Debian packages used, the icon themes taken from each, and their licences (from the packages' copyright files).
PACKAGES = {
    "oxygen-icon-theme": {"themes": ("oxygen",), "license": "LGPL-3+"},
    "tango-icon-theme": {"themes": ("Tango",), "license": "public domain"},
    "gnome-icon-theme": {"themes": ("gnome",), "license": "GPL-3+ (GPL-2+ for some files)"},
    "mate-icon-theme": {"themes": ("mate",), "license": "LGPL-3+ or CC-BY-SA"},
    "elementary-xfce-icon-theme": {"themes": ("elementary-xfce",), "license": "GPL-2+ (some files LGPL-2+, "
                                                                              "CC-BY-SA-2.0)"},
    "lxde-icon-theme": {"themes": ("nuoveXT2",), "license": "LGPL-3+"},
}
#: The freedesktop icon contexts; each is a class when it has at least --min_per_class icons.
CONTEXTS = ("actions", "apps", "categories", "devices", "emblems", "emotes", "mimetypes", "places", "status")
#: Smallest rendered size taken as a source (pixels); smaller renderings are hand-hinted pixel art.
MIN_SOURCE_SIZE = 32
DEFAULT_CACHE = os.path.join(os.environ.get("SAGAN_TF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                              "sagan_tf"))
_SIZE_DIR = re.compile(r"^(\d+)(?:x\d+)?$")
_THUMBNAIL = 16
#: Hidden (a leading ".") so that the folder loader does not warn about it; README.md and LICENSE it reports once.
MANIFEST = ".manifest.json"


class BuildError(RuntimeError):
    """The dataset cannot be built here (no apt-get/dpkg-deb, a package cannot be downloaded, too few icons)."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image_size", type=int, default=32, help="Side length of the written images.")
    parser.add_argument("--output_dir", default=None,
                        help="Dataset folder. Default: <cache_dir>/datasets/debian-icons-<image_size>.")
    parser.add_argument("--cache_dir", default=DEFAULT_CACHE,
                        help="Where downloads are kept (<cache_dir>/debian_icons). Default: $SAGAN_TF_CACHE or "
                             "~/.cache/sagan_tf.")
    parser.add_argument("--min_per_class", type=int, default=100, help="Leave out contexts with fewer icons.")
    parser.add_argument("--near_duplicate_mse", type=float, default=0.001,
                        help="Icons whose 16x16 thumbnails differ by less (mean squared error on [0, 1]) are one.")
    parser.add_argument("--force", action="store_true", help="Rebuild even if the dataset is up to date.")
    return parser.parse_args(argv)


def _run(command, cwd=None):
    try:
        return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise BuildError(f"`{command[0]}` is not installed; this script needs a Debian or Ubuntu system with apt-get "
                         "and dpkg-deb.") from None
    except subprocess.CalledProcessError as error:
        raise BuildError(f"`{' '.join(command)}` failed: {error.stderr.strip()}") from None


def download_and_unpack(packages, cache_dir, log=print):
    """Downloads each package's .deb with `apt-get download` (once) and unpacks it with `dpkg-deb -x` (once).

    Args:
        packages: Debian package names.
        cache_dir: the download cache; .deb files go to `<cache_dir>/debs`, unpacked trees to `<cache_dir>/<package>`.
        log: called with one line per action.

    Returns:
        {package: (version, unpacked root directory)}.
    """
    debs = os.path.join(cache_dir, "debs")
    os.makedirs(debs, exist_ok=True)
    result = {}
    for package in packages:
        found = sorted(glob.glob(os.path.join(debs, f"{package}_*.deb")))
        if not found:
            log(f"downloading {package} (apt-get download)")
            _run(["apt-get", "download", package], cwd=debs)
            found = sorted(glob.glob(os.path.join(debs, f"{package}_*.deb")))
            if not found:
                raise BuildError(f"apt-get download {package} wrote no .deb file into {debs}.")
        deb = found[-1]
        version = _run(["dpkg-deb", "--field", deb, "Version"]).strip()
        root = os.path.join(cache_dir, package)
        marker = os.path.join(root, ".unpacked-" + version.replace(":", "_"))
        if not os.path.exists(marker):
            log(f"unpacking {os.path.basename(deb)}")
            shutil.rmtree(root, ignore_errors=True)
            os.makedirs(root)
            _run(["dpkg-deb", "-x", deb, root])
            open(marker, "w").close()
        result[package] = (version, root)
    return result


def _rendered_size(parts):
    for part in parts:
        match = _SIZE_DIR.match(part)
        if match:
            return int(match.group(1))
    return None


def find_icons(root, themes):
    """The source PNG of every icon of `themes` under an unpacked package `root`.

    Icon theme layouts differ (<theme>/<size>/<context>/ in most, <theme>/base/<size>/<context>/ in Oxygen,
    <theme>/<context>/<size>/ in elementary-xfce); any path below share/icons/<theme>/ holding a size folder and a
    context folder counts. Symlinks are followed and broken ones skipped; for each (context, file the link points
    to) the largest rendering of at least `MIN_SOURCE_SIZE` pixels wins.

    Returns:
        A sorted list of (theme, context, icon name, path of the real file).
    """
    best = {}
    for theme in themes:
        theme_dir = os.path.join(root, "usr", "share", "icons", theme)
        for folder, _, files in os.walk(theme_dir):
            parts = os.path.relpath(folder, theme_dir).split(os.sep)
            context = next((p for p in parts if p in CONTEXTS), None)
            size = _rendered_size(parts)
            if context is None or size is None or size < MIN_SOURCE_SIZE:
                continue
            for name in files:
                path = os.path.join(folder, name)
                if not name.endswith(".png") or not os.path.isfile(path):
                    continue
                real = os.path.realpath(path)
                key = (theme, context, os.path.basename(real))
                if key not in best or best[key][0] < size:
                    best[key] = (size, real)
    return sorted((theme, context, name[: -len(".png")], real) for (theme, context, name), (_, real) in best.items())


def render(path, image_size):
    """The icon at `path` composited over white, resized (Lanczos) to `image_size`: uint8 [size, size, 3]."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGBA")
        side = max(image.size)
        if image.size[0] != image.size[1]:  # A few icons are not square: pad with transparency, keep the centre.
            square = Image.new("RGBA", (side, side), (255, 255, 255, 0))
            square.paste(image, ((side - image.size[0]) // 2, (side - image.size[1]) // 2))
            image = square
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(background, image).convert("RGB")
        return np.asarray(rgb.resize((image_size, image_size), Image.LANCZOS))


def deduplicate(icons, images, near_duplicate_mse):
    """Indices of the icons to keep: the first of each group of byte-identical files or near-duplicate drawings.

    Args:
        icons: (theme, context, name, path) tuples, in a fixed order (the first of a group is kept).
        images: their renderings, uint8 [n, h, w, 3].
        near_duplicate_mse: thumbnails (16x16, values in [0, 1]) closer than this mean squared error are duplicates.

    Returns:
        The sorted indices kept.
    """
    from PIL import Image

    digests, candidates = set(), []
    for index, (_, _, _, path) in enumerate(icons):
        with open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        if digest not in digests:
            digests.add(digest)
            candidates.append(index)
    if not candidates:
        return []
    thumbs = np.stack([np.asarray(Image.fromarray(images[i]).resize((_THUMBNAIL, _THUMBNAIL), Image.BILINEAR),
                                  np.float64).ravel() / 255.0 for i in candidates])
    squares = (thumbs ** 2).sum(axis=1)
    # All pairwise mean squared errors at once: a few thousand icons make a matrix of some tens of MiB.
    mse = (squares[:, None] + squares[None, :] - 2.0 * thumbs @ thumbs.T) / thumbs.shape[1]
    kept = []
    for row in range(len(candidates)):
        if not kept or mse[row, kept].min() >= near_duplicate_mse:
            kept.append(row)
    return [candidates[row] for row in kept]


def _write_png(pixels, path):
    from PIL import Image

    Image.fromarray(pixels).save(path, optimize=True)


def settings_for(packages, image_size, min_per_class, near_duplicate_mse):
    """The build settings a manifest records: an unchanged manifest means the dataset is up to date."""
    return {"image_size": image_size, "min_per_class": min_per_class, "near_duplicate_mse": near_duplicate_mse,
            "min_source_size": MIN_SOURCE_SIZE,
            "packages": {name: version for name, (version, _) in packages.items()}}


def build(packages, output_dir, image_size, min_per_class, near_duplicate_mse, log=print):
    """Selects, renders, deduplicates and writes the icons; writes README.md, LICENSE and .manifest.json.

    The dataset is written into a temporary folder beside `output_dir` and then moved into place, so that an
    interrupted build never leaves a half-written dataset behind.

    Args:
        packages: {package: (version, unpacked root)} (see `download_and_unpack`).
        output_dir: the dataset folder to (re)create.
        image_size: side length of the written images.
        min_per_class: contexts with fewer icons are left out.
        near_duplicate_mse: see `deduplicate`.
        log: called with progress lines.

    Returns:
        The manifest (a dict).

    Raises:
        BuildError: fewer than two contexts have `min_per_class` icons.
    """
    icons = []
    for package, (_, root) in packages.items():
        found = find_icons(root, PACKAGES[package]["themes"])
        log(f"{package}: {len(found)} icons of {MIN_SOURCE_SIZE}px or more")
        icons += [(package, *icon) for icon in found]
    images = np.stack([render(icon[4], image_size) for icon in icons])
    kept = deduplicate([icon[1:] for icon in icons], images, near_duplicate_mse)
    log(f"{len(icons)} icons, {len(kept)} after removing identical files and near-duplicate drawings")
    counts = {context: sum(1 for i in kept if icons[i][2] == context) for context in CONTEXTS}
    classes = sorted(context for context, count in counts.items() if count >= min_per_class)
    if len(classes) < 2:
        raise BuildError(f"Only {len(classes)} icon context(s) have {min_per_class} icons or more ({counts}); lower "
                         "--min_per_class.")
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".building-", dir=parent)
    files = []
    for index in kept:
        package, theme, context, name, source = icons[index]
        if context not in classes:
            continue
        relative = os.path.join(context, f"{theme}-{name}.png")
        os.makedirs(os.path.join(staging, context), exist_ok=True)
        _write_png(images[index], os.path.join(staging, relative))
        files.append({"file": relative, "package": package, "theme": theme,
                      "source": os.path.relpath(source, packages[package][1])})
    per_class = {context: counts[context] for context in classes}
    used = sorted({f["package"] for f in files})
    per_package = {p: sum(1 for f in files if f["package"] == p) for p in used}
    with open(os.path.join(staging, "LICENSE"), "w") as license_file:
        for package in used:
            copyright_file = os.path.join(packages[package][1], "usr", "share", "doc", package, "copyright")
            with open(copyright_file, encoding="utf-8", errors="replace") as handle:
                license_file.write(f"{'=' * 78}\n{package} {packages[package][0]}: /usr/share/doc/{package}/"
                                   f"copyright\n{'=' * 78}\n{handle.read()}\n")
    settings = settings_for(packages, image_size, min_per_class, near_duplicate_mse)
    manifest = {"settings": settings, "num_images": len(files), "classes": per_class,
                "left_out_contexts": {c: counts[c] for c in CONTEXTS if c not in classes},
                "images_per_package": per_package,
                "licenses": {p: PACKAGES[p]["license"] for p in used}, "files": files}
    with open(os.path.join(staging, MANIFEST), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
    with open(os.path.join(staging, "README.md"), "w") as handle:
        handle.write(readme(manifest))
    if os.path.exists(output_dir):
        shutil.rmtree(output_dir)
    os.replace(staging, output_dir)
    log(f"wrote {len(files)} images of {image_size}x{image_size} in {len(classes)} classes to {output_dir}")
    for context in classes:
        log(f"  {context:<12} {per_class[context]:5d}")
    for package in used:
        log(f"  {package:<28} {per_package[package]:5d} images, {PACKAGES[package]['license']}")
    return manifest


def readme(manifest):
    """The README.md of a built dataset: what it is, how it was built, the counts and the licences."""
    settings = manifest["settings"]
    size = settings["image_size"]
    lines = [
        f"# Debian icons, {size}x{size}",
        "",
        "Icons drawn by people for desktop icon themes, taken from Debian packages by `benchmarks/icon_dataset.py` "
        "of sagan_tf. One class per freedesktop icon context; one image per distinct icon (the largest rendering of "
        f"at least {settings['min_source_size']} px; aliases, identical files and near-duplicate drawings whose "
        f"16x16 thumbnails differ by a mean squared error below {settings['near_duplicate_mse']} kept once), "
        f"composited over white and resized with Lanczos to {size}x{size}. Use it as `folder:<this folder>`.",
        "",
        f"{manifest['num_images']} images. Classes:",
        "",
    ]
    lines += [f"- {context}: {count}" for context, count in manifest["classes"].items()]
    left_out = ", ".join(f"{c} ({n})" for c, n in manifest["left_out_contexts"].items())
    lines += ["", f"Contexts left out (fewer than {settings['min_per_class']} icons): {left_out or 'none'}.", "",
              "## Licences", "",
              "Each image keeps the licence of the package it comes from; the Debian copyright file of each package "
              "is in LICENSE. The manifest (.manifest.json) names the package and source file of every image.", ""]
    lines += [f"- {package} {settings['packages'][package]}: {manifest['images_per_package'][package]} images, "
              f"{license_}" for package, license_ in manifest["licenses"].items()]
    lines += ["", "The dataset is built locally for training and evaluation; redistributing it means following "
              "these licences (GPL and LGPL artwork: provide the source, i.e. the packages; CC-BY-SA: attribution "
              "and share-alike).", ""]
    return "\n".join(lines)


def summary(output_dir, manifest):
    """The JSON-able summary the script prints last."""
    return {"output_dir": output_dir, "num_images": manifest["num_images"], "classes": manifest["classes"],
            "packages": manifest["settings"]["packages"], "licenses": manifest["licenses"]}


def main(argv=None):
    args = parse_args(argv)
    output_dir = os.path.abspath(os.path.expanduser(
        args.output_dir or os.path.join(args.cache_dir, "datasets", f"debian-icons-{args.image_size}")))
    try:
        packages = download_and_unpack(PACKAGES, os.path.join(args.cache_dir, "debian_icons"))
    except BuildError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    settings = settings_for(packages, args.image_size, args.min_per_class, args.near_duplicate_mse)
    manifest_path = os.path.join(output_dir, MANIFEST)
    if not args.force and os.path.exists(manifest_path):
        with open(manifest_path) as handle:
            manifest = json.load(handle)
        if manifest.get("settings") == settings:
            print(f"{output_dir} is up to date ({manifest['num_images']} images); --force rebuilds it.")
            print(json.dumps(summary(output_dir, manifest)))
            return 0
    manifest = build(packages, output_dir, args.image_size, args.min_per_class, args.near_duplicate_mse)
    print(json.dumps(summary(output_dir, manifest)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
