"""Start-up cost of training on a large image folder, in units of one scan of that folder.

Usage:
  python benchmarks/folder_startup.py --files=100000 --repeats=5 [--folder_dir=/tmp/sagan_tf_folder_bench]

Generates (once, then reused) a folder of --files small PNGs in 10 class subfolders and a second folder of 48, then:

  scan_s       one `sagan_tf.data.folder.scan` of the large folder with a warm page cache (best of 2 after a
               first, warming scan, before the runs and after each pair of them): every file listed, stat-ed and read
               at both ends
  run_large_s  wall time of a 1-step `python -m training.run` on the large folder, evaluation off (best of
               --repeats, alternated with the small folder's runs)
  run_small_s  the same on the 48-image folder
  extra_scans  (run_large_s - run_small_s) / scan_s: how many scans' worth of time the folder's size adds to a run
               (the goal: one pass, <= 1.3)
  extra_scans_paired  the median over repeats of (large run - the small run right after it), over the median scan:
               the same figure, robust to a machine whose speed drifts between runs (a shared VM's runs of the same
               command spread by several seconds, as much as one scan)
  runs_large_s, runs_small_s, scans_s  every measurement, in order

Each run is a fresh process (imports, TensorFlow start-up and the 1-step graph are the same for both folders and
cancel in the difference). Prints one JSON line.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_folder(path, count, classes=10, size=8):
    """Writes `count` size x size PNGs in `classes` subfolders of `path`, unless it already holds them."""
    import numpy as np
    from PIL import Image

    marker = os.path.join(path, f".complete-{count}")
    if os.path.exists(marker):
        return path
    rng = np.random.default_rng(0)
    for index in range(count):
        folder = os.path.join(path, f"class_{index % classes:02d}")
        os.makedirs(folder, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"image_{index:07d}.png"))
    open(marker, "w").close()
    return path


def time_scan(path):
    from sagan_tf.data import folder

    folder.scan(path)  # warms the page cache
    times = []
    for _ in range(2):
        start = time.perf_counter()
        folder.scan(path)
        times.append(time.perf_counter() - start)
    return min(times)


def time_run(path):
    with tempfile.TemporaryDirectory() as model_dir:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1",
                   PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        command = [sys.executable, "-m", "training.run", f"--dataset=folder:{path}", "--image_size=32",
                   "--batch_size=8", "--train_steps=1", "--eval_samples=0", f"--model_dir={model_dir}"]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"training.run failed on {path}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5, help="Runs on each folder; the best of each counts.")
    parser.add_argument("--folder_dir", default=os.path.join(tempfile.gettempdir(), "sagan_tf_folder_bench"))
    args = parser.parse_args(argv)
    large = make_folder(os.path.join(args.folder_dir, f"large_{args.files}"), args.files)
    small = make_folder(os.path.join(args.folder_dir, "small_48"), 48)
    scans, runs_large, runs_small = [time_scan(large)], [], []
    for _ in range(args.repeats):  # alternated, so that a change of the machine's load falls on both
        runs_large.append(time_run(large))
        runs_small.append(time_run(small))
        scans.append(time_scan(large))
    scan, run_large, run_small = min(scans), min(runs_large), min(runs_small)
    paired = statistics.median(after - before for after, before in zip(runs_large, runs_small))
    from benchmarks.train_throughput import device_name

    print(json.dumps({"benchmark": "folder_startup", "device": device_name(), "files": args.files,
                      "repeats": args.repeats, "scan_s": round(scan, 2), "run_large_s": round(run_large, 2),
                      "run_small_s": round(run_small, 2),
                      "extra_scans": round((run_large - run_small) / scan, 2),
                      "extra_scans_paired": round(paired / statistics.median(scans), 2),
                      "runs_large_s": [round(t, 2) for t in runs_large],
                      "runs_small_s": [round(t, 2) for t in runs_small], "scans_s": [round(t, 2) for t in scans],
                      "load_avg_1min": os.getloadavg()[0]}), flush=True)


if __name__ == "__main__":
    main()
