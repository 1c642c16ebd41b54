"""Peak memory of one serving request per image: prints one JSON line per preset.

Usage:
  python benchmarks/serving_memory.py --presets=synthetic32,cifar32,dcgan64
  python benchmarks/serving_memory.py --presets=imagenet128 --batch_sizes=1,16 --nocap   # what fits in minutes
  python benchmarks/serving_memory.py --unknown_name_lengths=2000,8000 --num_classes=1000

For each preset, a generator with random weights (memory does not depend on them) is exported with
`sagan_tf.serving.export_generator` (a cap above every measured batch); then, for each batch size b, a fresh
process loads the SavedModel with `tf.saved_model.load`, as TF Serving's runtime would, and answers one `generate`
request for b images (the latents, the generator, uint8 images and PNGs). Its growth is the peak resident memory
during the request minus the resident memory after loading: the process's getrusage high-water mark when the
request raised it (it did in every run so far), else the highest of 20 ms samples. A fresh process per request, so
that no earlier request's memory hides this one's. Reported per line:

  mib_per_image_b<b>, growth_mib_b<b>, seconds_b<b>   for each --batch_sizes entry (default 1 and 64)
  cap, growth_mib_cap, mib_per_image_cap, seconds_cap the request at the cap `export.run` would choose for
                                                      --memory_budget_mib (unless --nocap)
  library_mib_per_image                               the figure `sagan_tf.serving.memory` uses for the preset
  rss_after_load_mib                                  the process after loading (the model and TensorFlow)
  device, tensorflow

`sagan_tf.serving.memory.MEASURED_MIB_PER_IMAGE` holds mib_per_image_b64 of each preset.

With --unknown_name_lengths, one line instead measures what `generate_by_name` spends on a name it does not know:
for each length L, a fresh process builds the export's `sagan_tf.serving.class_names.ClassNameLookup` over --num_classes
names of --class_name_bytes bytes each (imagenet128 has 1,000 classes) inside a `tf.function`, as the SavedModel
runs it, and looks up one name of L characters ("x" * L). Reported per line: seconds_l<L>, growth_mib_l<L> (the
peak resident memory during the call minus the resident memory before it, measured as above) and refused_l<L>
(the first line of the InvalidArgumentError the call raised).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _child(path, batch):
    """Runs in a fresh process: one `generate` request of `batch` images; prints its memory growth."""
    import tensorflow as tf

    from benchmarks.machine import PeakSampler, rss_mib

    loaded = tf.saved_model.load(path)
    generate = loaded.signatures["generate"]
    conditional = "labels" in generate.structured_input_signature[1]
    count = {"labels": tf.zeros([batch], tf.int32)} if conditional else {"batch_size": tf.constant(batch)}
    before = rss_mib()
    high_water_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sampler = PeakSampler()
    sampler.start()
    start = time.perf_counter()
    images = generate(seed=tf.constant(0, tf.int64), truncation=tf.constant(1.0), **count)["png_bytes"].numpy()
    seconds = time.perf_counter() - start
    sampled = sampler.stop()
    high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = high_water if high_water > high_water_before else sampled
    assert len(images) == batch
    print(json.dumps({"rss_after_load_mib": round(before, 1), "growth_mib": round(peak - before, 1),
                      "seconds": round(seconds, 2)}))


def _unknown_name_child(length, num_classes, class_name_bytes):
    """Runs in a fresh process: one lookup of an unknown name of `length` characters; prints its cost."""
    import tensorflow as tf

    from benchmarks.machine import PeakSampler
    from sagan_tf.serving.class_names import ClassNameLookup

    names = [f"{index:06d}".ljust(class_name_bytes, "c") for index in range(num_classes)]
    lookup = ClassNameLookup(names)
    function = tf.function(lookup, input_signature=[tf.TensorSpec([None], tf.string)])
    function(tf.constant([names[0]]))  # traced and run once on a known name, so that tracing is not counted
    request = tf.constant(["x" * length])
    high_water_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sampler = PeakSampler()
    before = sampler.peak  # its first sample: the peak it reports can then not be below it
    sampler.start()
    start = time.perf_counter()
    try:
        function(request)
        refused = None
    except tf.errors.InvalidArgumentError as error:
        refused = next((line.strip() for line in error.message.splitlines() if "assertion failed" in line),
                       error.message)[:160]
    seconds = time.perf_counter() - start
    sampled = sampler.stop()
    high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = high_water if high_water > high_water_before else sampled
    print(json.dumps({"growth_mib": round(peak - before, 1), "seconds": round(seconds, 3), "refused": refused}))


def _run_child(arguments, what):
    result = subprocess.run([sys.executable, os.path.abspath(__file__), *arguments],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_unknown_name(length, num_classes=1000, class_name_bytes=16):
    """What one lookup of an unknown name of `length` characters costs, in a fresh process.

    Returns:
      A dict: `growth_mib`, `seconds` and `refused` (the assertion line of the refusal, None if none).
    """
    return _run_child([f"--_unknown_name_length={length}", f"--num_classes={num_classes}",
                       f"--class_name_bytes={class_name_bytes}"], f"the lookup of a {length}-character name")


def _measure(path, batch):
    return _run_child([f"--_child={path}", f"--_batch={batch}"], f"the batch-{batch} request")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="synthetic32", help="Comma-separated presets.")
    parser.add_argument("--batch_sizes", default="1,64", help="Comma-separated batch sizes to measure.")
    parser.add_argument("--memory_budget_mib", type=float, default=None,
                        help="Budget whose default cap is also measured (default: the library's).")
    parser.add_argument("--nocap", action="store_true", help="Do not measure the request at the cap.")
    parser.add_argument("--unknown_name_lengths", default=None,
                        help="Comma-separated name lengths: measure generate_by_name's lookup of one unknown name of "
                             "each length instead of the presets' requests.")
    parser.add_argument("--num_classes", type=int, default=1000, help="Class names of the unknown-name lookup.")
    parser.add_argument("--class_name_bytes", type=int, default=16,
                        help="Bytes of each class name of the unknown-name lookup.")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_unknown_name_length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        _child(args._child, args._batch)
        return
    if args._unknown_name_length is not None:
        _unknown_name_child(args._unknown_name_length, args.num_classes, args.class_name_bytes)
        return
    if args.unknown_name_lengths:
        record = {"num_classes": args.num_classes, "class_name_bytes": args.class_name_bytes}
        for length in [int(length) for length in args.unknown_name_lengths.split(",") if length]:
            figures = measure_unknown_name(length, args.num_classes, args.class_name_bytes)
            record.update({f"{key}_l{length}": value for key, value in figures.items()})
        print(json.dumps(record), flush=True)
        return

    import tensorflow as tf

    from benchmarks.train_throughput import device_name
    from sagan_tf.config import presets
    from sagan_tf.serving import signatures as serving, memory as serving_memory
    from sagan_tf.run.restore import build_generator

    budget = args.memory_budget_mib or serving_memory.DEFAULT_MEMORY_BUDGET_MIB
    batch_sizes = [int(size) for size in args.batch_sizes.split(",") if size]
    device = device_name()
    for name in [name for name in args.presets.split(",") if name]:
        config = presets.get_preset(name).model
        choice = serving_memory.choose_max_batch_size(config, memory_budget_mib=budget)
        record = {"preset": name, "image_size": config.image_size, "memory_budget_mib": budget}
        measured = [(f"b{size}", size) for size in batch_sizes]
        if not args.nocap:
            measured.append(("cap", choice["max_batch_size"]))
        with tempfile.TemporaryDirectory() as scratch:
            path = serving.export_generator(build_generator(config), config, scratch, 1,
                                            max_batch_size=max(size for _, size in measured))
            for key, size in measured:
                figures = _measure(path, size)
                record.setdefault("rss_after_load_mib", figures["rss_after_load_mib"])
                record.update({f"growth_mib_{key}": figures["growth_mib"],
                               f"mib_per_image_{key}": round(figures["growth_mib"] / size, 3),
                               f"seconds_{key}": figures["seconds"]})
                if key == "cap":
                    record["cap"] = size
        record.update({"library_mib_per_image": choice["mib_per_image"],
                       "library_source": choice["mib_per_image_source"], "device": device,
                       "tensorflow": tf.__version__})
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
