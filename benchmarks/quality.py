"""Generation quality on a real dataset over a fixed budget of images: one JSON line per evaluation, curves, samples.

Usage:
  python benchmarks/quality.py                                   # synthetic32 on Debian icons, ~20 min on 2 CPU cores
  python benchmarks/quality.py --images=40000 --attention=on,off --seeds=0,1,2
  python benchmarks/quality.py --precisions=float32,mixed_bfloat16 --output_dir=/tmp/quality
  python benchmarks/quality.py --replot --output_dir=/tmp/quality   # redraw the plot from evaluations.jsonl
  # Small data: 10% of each class (about 230 images) and all of them, without and with augmentation and LeCam
  python benchmarks/quality.py --data_fraction=0.1,1 --augment=none,diffaugment,ada --lecam_weight=0,0.3 --seeds=0,1

The dataset is the Debian icon dataset of `benchmarks/icon_dataset.py` at --image_size (built first when
--dataset_dir is not given and it is missing; needs apt-get the first time), an ordinary `folder:` dataset: one class
per icon context. The preset (default synthetic32, the small residual SAGAN, made class-conditional on the icon
classes) trains for --images real images seen by the discriminator (train steps x d_steps x batch), in a fresh
process per variant. Quality is measured with the dataset's domain classifier (`--classifier=domain`: trained once
and cached in $SAGAN_TF_CACHE/domain_classifiers) on --eval_samples generated images of the EMA generator against
the real statistics of the whole folder, at the start and --evaluations times during training.

Variants are the product of --precisions (float32, mixed_bfloat16, mixed_float16), --attention (on: the preset's
self-attention layers; off: none, the paper's ablation), the small-data options --data_fraction (train on that
fraction of each class, the same images for every variant: a subset drawn with --subset_seed; evaluation still
compares with the whole folder), --augment (none, diffaugment, ada; with --ada_kimg), --lecam_weight and
--orthogonal_reg, and --seeds. Output:

  one JSON line per evaluation (also appended to <output_dir>/evaluations.jsonl): variant, mixed_precision,
      attention, data_fraction, train_images, augment, lecam_weight, orthogonal_reg, seed, step, images_seen,
      train_seconds (training only), wall_seconds (evaluation included), fid, kid, inception_score, precision,
      recall, density, coverage, classifier (the classifier's tag)
  one JSON line per variant at its end: images_per_s (training only), sample_grid (PNG of the final EMA samples),
      load averages before and after, and with --augment=ada the final ada_p and ada_rt (the last
      overfitting heuristic r_t = E[sign(D(real))] it adjusted p from)
  one JSON line per group of seeds ("kind": "summary"): final figures as mean and standard deviation over seeds
  <output_dir>/quality_curves.png: FID, KID, IS, precision, recall, coverage against images seen (mean over seeds,
      with the min-max band)

matplotlib (a dependency of sagan_tf, through `sagan_tf.sampling.plots`) draws the plot.
Timings depend on the machine and its load: the JSON records the load averages. Not a test.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FIGURES = ("fid", "kid", "inception_score", "precision", "recall", "density", "coverage")
PLOTTED = (("fid", "FID (domain features)"), ("kid", "KID"), ("inception_score", "Inception Score (domain logits)"),
           ("precision", "precision (k=3)"), ("recall", "recall (k=3)"), ("coverage", "coverage (k=3)"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", default=None, help="An image folder with one subfolder per class. Default: "
                        "the Debian icon dataset at --image_size (built when missing).")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--preset", default="synthetic32", help="A preset making --image_size images.")
    parser.add_argument("--images", type=int, default=57_600,
                        help="Real images seen per variant (the budget). The default takes about 20 minutes on 2 "
                             "loaded CPU cores with synthetic32, evaluations included.")
    parser.add_argument("--evaluations", type=int, default=8, help="Evaluations during training (plus one at 0).")
    parser.add_argument("--eval_samples", type=int, default=2000, help="Generated images per evaluation.")
    parser.add_argument("--precisions", default="float32")
    parser.add_argument("--attention", default="on", help="Comma-separated subset of on,off.")
    parser.add_argument("--data_fraction", default="1", help="Comma-separated fractions in (0, 1] of each class's "
                        "images to train on (1: the whole folder).")
    parser.add_argument("--subset_seed", type=int, default=0, help="Seed of the --data_fraction subsets (the same "
                        "images for every training seed).")
    parser.add_argument("--augment", default="none", help="Comma-separated subset of none,diffaugment,ada.")
    parser.add_argument("--ada_kimg", type=float, default=500.0, help="Thousands of images in which ADA's p can go "
                        "from 0 to 1 (the paper's 500; at the default budget p then moves by at most 0.12).")
    parser.add_argument("--lecam_weight", default="0", help="Comma-separated LeCam weights (0: off).")
    parser.add_argument("--orthogonal_reg", default="0", help="Comma-separated orthogonal-regularization betas "
                        "(0: off; BigGAN's is 1e-4).")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--output_dir", default="quality")
    parser.add_argument("--replot", action="store_true", help="Only redraw the plot and summaries from "
                        "<output_dir>/evaluations.jsonl.")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


#: The small-data settings of a variant and their values in the paper's recipe (left out of names at those values).
SMALL_DATA_DEFAULTS = {"data_fraction": 1.0, "augment": "none", "lecam_weight": 0.0, "orthogonal_reg": 0.0}


def _small_data_settings(spec):
    """[(name, value as text)] of the small-data settings of `spec` that differ from the paper's recipe."""
    settings = []
    for name, default in SMALL_DATA_DEFAULTS.items():
        value = spec.get(name, default)
        if value != default:
            settings.append((name, value if isinstance(value, str) else f"{value:g}"))
    return settings


def variant_name(spec):
    parts = [f"{name}_{value}" for name, value in _small_data_settings(spec)]
    return "-".join([f"{spec['mixed_precision']}-attention_{spec['attention']}", *parts, f"seed{spec['seed']}"])


def group_name(record):
    parts = [f"{name} {value}" for name, value in _small_data_settings(record)]
    return ", ".join([record["mixed_precision"], f"attention {record['attention']}", *parts])


def parse_list(text, flag, convert=str, allowed=None):
    """The comma-separated values of a variant flag, converted; SystemExit naming the flag for a bad value."""
    try:
        values = [convert(value.strip()) for value in str(text).split(",")]
    except ValueError:
        raise SystemExit(f"--{flag} takes a comma-separated list. Received: {text}") from None
    if allowed is not None and any(value not in allowed for value in values):
        raise SystemExit(f"--{flag} takes a comma-separated subset of {','.join(allowed)}. Received: {text}")
    return values


def training_dataset(spec):
    """The dataset a variant trains on: the folder, or its seeded `data_fraction` of each class."""
    from sagan_tf import data

    dataset = data.resolve(spec["dataset"])
    fraction = spec.get("data_fraction", 1.0)
    return dataset if fraction == 1 else dataset.class_subset(fraction, spec.get("subset_seed", 0))


def eval_config(eval_samples):
    from sagan_tf.evaluation import evaluator as evaluation

    return evaluation.EvalConfig(num_samples=eval_samples, classifier="domain", compute_kid=True,
                                 compute_precision_recall=True, log_every=0)


def experiment(spec):
    """The `ExperimentConfig` of a variant: the preset on the folder, conditional on its classes."""
    from sagan_tf import data
    from sagan_tf.config import presets

    config = presets.get_preset(spec["preset"])
    if config.model.image_size != spec["image_size"]:
        raise SystemExit(f"--preset={spec['preset']} makes {config.model.image_size}x{config.model.image_size} images, "
                         f"not --image_size={spec['image_size']}.")
    info = data.get_info(spec["dataset"])
    fields = dict(dataset=spec["dataset"], num_classes=info.num_classes if info.conditional else 0,
                  train_steps=spec["steps"], augment=spec.get("augment", "none"),
                  lecam_weight=spec.get("lecam_weight", 0.0), orthogonal_reg=spec.get("orthogonal_reg", 0.0))
    if fields["augment"] == "ada":
        fields["ada_kimg"] = spec.get("ada_kimg", 500.0)
    if spec["attention"] == "off":
        fields.update(g_attention_resolutions=(), d_attention_resolutions=())
    return config.replace(**fields)


def run_variant(spec):
    """Trains and evaluates one variant in this process, printing its JSON lines."""
    import keras
    import numpy as np

    from sagan_tf import callbacks, data
    from sagan_tf.evaluation import evaluator as evaluation
    from sagan_tf.models import build_sagan

    load_before = os.getloadavg()[0]
    config = experiment(spec)
    evaluator = evaluation.Evaluator.create(spec["dataset"], spec["image_size"], eval_config(spec["eval_samples"]),
                                            print_fn=None)
    keras.mixed_precision.set_global_policy(spec["mixed_precision"])
    keras.utils.set_random_seed(spec["seed"])
    model = build_sagan(config, seed=spec["seed"])
    images_per_step = config.training.images_per_step
    steps = config.training.train_steps
    train_set = training_dataset(spec)
    dataset = data.load(train_set, "train", image_size=spec["image_size"], batch_size=images_per_step,
                        seed=spec["seed"])
    settings = {"data_fraction": spec.get("data_fraction", 1.0), "train_images": train_set.num_images,
                **{name: getattr(config.training, name) for name in ("augment", "lecam_weight", "orthogonal_reg")}}
    start = time.perf_counter()
    clock = {"eval": 0.0}

    def evaluate(generator):
        began = time.perf_counter()
        figures = evaluator(generator)
        clock["eval"] += time.perf_counter() - began
        step = callbacks.global_step(model)
        wall = time.perf_counter() - start
        record = {"kind": "evaluation", "variant": variant_name(spec), "preset": spec["preset"],
                  "mixed_precision": spec["mixed_precision"], "attention": spec["attention"], **settings,
                  "seed": spec["seed"], "step": step, "images_seen": step * images_per_step,
                  "train_seconds": round(wall - clock["eval"], 1), "wall_seconds": round(wall, 1),
                  **{name: figures.get(name) for name in FIGURES}, "classifier": evaluator.tag,
                  "eval_samples": figures["num_samples"], "num_real": evaluator.real_stats.count}
        print(json.dumps(record), flush=True)
        return figures

    every = max(1, steps // spec["evaluations"])
    info = data.get_info(spec["dataset"])
    grid = callbacks.SampleGrid(os.path.join(spec["output_dir"], variant_name(spec)), 0, samples_per_class=8,
                                seed=0, class_names=info.class_names)
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False,
              callbacks=[callbacks.EvaluateEvery(every, evaluate, print_fn=lambda line: None), grid])
    wall = time.perf_counter() - start
    train_seconds = wall - clock["eval"]
    ada = ({"ada_p": float(np.asarray(model.ada.p)), "ada_rt": float(np.asarray(model.ada.rt))}
           if model.ada is not None else {})
    print(json.dumps({"kind": "variant", "variant": variant_name(spec), "preset": spec["preset"],
                      "mixed_precision": spec["mixed_precision"], "attention": spec["attention"], **settings, **ada,
                      "seed": spec["seed"], "steps": steps, "images_seen": steps * images_per_step,
                      "images_per_s": round(steps * images_per_step / train_seconds, 1),
                      "train_seconds": round(train_seconds, 1), "eval_seconds": round(clock["eval"], 1),
                      "wall_seconds": round(wall, 1), "sample_grid": grid.last_path,
                      "load_avg_1min_before": load_before, "load_avg_1min_after": os.getloadavg()[0],
                      "final_d_loss": float(np.asarray(model.d_loss_tracker.result()))}), flush=True)


def summaries(records):
    """One summary per group (mixed precision, attention, small-data settings): final figures' mean and standard
    deviation over seeds."""
    import numpy as np

    finals = {}
    for record in records:
        if record.get("kind") != "evaluation":
            continue
        key = (group_name(record), record["seed"])
        if key not in finals or record["step"] > finals[key]["step"]:
            finals[key] = record
    groups = {}
    for (group, _), record in sorted(finals.items()):
        groups.setdefault(group, []).append(record)
    out = []
    for group, members in groups.items():
        summary = {"kind": "summary", "group": group, "seeds": [m["seed"] for m in members],
                   "images_seen": [m["images_seen"] for m in members]}
        for name in FIGURES:
            values = [m[name] for m in members if m.get(name) is not None]
            if values:
                summary[f"{name}_mean"] = round(float(np.mean(values)), 5)
                summary[f"{name}_std"] = round(float(np.std(values, ddof=1)), 5) if len(values) > 1 else None
        out.append(summary)
    return out


def plot(records, path, title):
    """Draws the curves of every group (mean over seeds, min-max band) into the PNG `path`; returns it."""
    import numpy as np

    from sagan_tf.sampling.plots import pyplot

    plt = pyplot()

    evaluations = [r for r in records if r.get("kind") == "evaluation"]
    groups = sorted({group_name(r) for r in evaluations})
    figure, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    for axis, (name, label) in zip(axes.ravel(), PLOTTED):
        for group in groups:
            by_seed = {}
            for r in evaluations:
                if group_name(r) == group and r.get(name) is not None:
                    by_seed.setdefault(r["seed"], {})[r["images_seen"]] = r[name]
            if not by_seed:
                continue
            xs = sorted(set.intersection(*(set(v) for v in by_seed.values())))
            values = np.array([[by_seed[s][x] for x in xs] for s in sorted(by_seed)])
            thousands = np.array(xs) / 1000.0
            line, = axis.plot(thousands, values.mean(axis=0), marker="o", markersize=3,
                              label=f"{group} ({len(by_seed)} seed{'s' if len(by_seed) > 1 else ''})")
            if len(by_seed) > 1:
                axis.fill_between(thousands, values.min(axis=0), values.max(axis=0), color=line.get_color(),
                                  alpha=0.2)
        axis.set_xlabel("real images seen (thousands)")
        axis.set_title(label)
        axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def prepare(args):
    """The dataset folder (built when missing) and the domain classifier (trained when missing)."""
    dataset_dir = args.dataset_dir
    if dataset_dir is None:
        from benchmarks import icon_dataset

        cache = icon_dataset.DEFAULT_CACHE
        dataset_dir = os.path.join(cache, "datasets", f"debian-icons-{args.image_size}")
        if icon_dataset.main([f"--image_size={args.image_size}", f"--output_dir={dataset_dir}"]):
            raise SystemExit("Could not build the icon dataset (see above).")
    dataset = f"folder:{os.path.abspath(dataset_dir)}"
    from sagan_tf import data
    from sagan_tf.evaluation import evaluator as evaluation
    from sagan_tf.evaluation.classifiers import cache as classifier_cache

    config = eval_config(args.eval_samples)
    resolved = data.resolve(dataset)  # the folder is scanned once, for the classifier's cache and the evaluation
    classifier_cache.ensure_domain_classifier(resolved, args.image_size, config, print_fn=lambda line: print(
        line, file=sys.stderr, flush=True))
    evaluator = evaluation.Evaluator.create(resolved, args.image_size, config, print_fn=None)
    card = evaluator.classifier.card
    print(json.dumps({"kind": "setup", "dataset": dataset, "num_real": evaluator.real_stats.count,
                      "classes": card["classes"], "classifier": evaluator.tag,
                      "classifier_heldout_accuracy": round(card["heldout_accuracy"], 4),
                      "classifier_majority_accuracy": round(card["majority_accuracy"], 4),
                      "classifier_training_seconds": round(card["training_seconds"], 1)}), flush=True)
    return dataset


def variant_specs(args):
    """The variants the flags ask for (their product), each a dict of its settings; SystemExit for a bad value."""
    def fraction(text):
        value = float(text)
        if not 0 < value <= 1:
            raise SystemExit(f"--data_fraction takes fractions in (0, 1]. Received: {args.data_fraction}")
        return value

    def weight(text):
        value = float(text)
        if not value >= 0:
            raise SystemExit(f"--lecam_weight and --orthogonal_reg take weights >= 0. Received: {text}")
        return value

    lists = {"mixed_precision": parse_list(args.precisions, "precisions"),
             "attention": parse_list(args.attention, "attention", allowed=("on", "off")),
             "data_fraction": parse_list(args.data_fraction, "data_fraction", fraction),
             "augment": parse_list(args.augment, "augment", allowed=("none", "diffaugment", "ada")),
             "lecam_weight": parse_list(args.lecam_weight, "lecam_weight", weight),
             "orthogonal_reg": parse_list(args.orthogonal_reg, "orthogonal_reg", weight),
             "seed": parse_list(args.seeds, "seeds", int)}
    return [dict(zip(lists, values)) for values in itertools.product(*lists.values())]


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        run_variant(json.loads(args.child))
        return
    os.makedirs(args.output_dir, exist_ok=True)
    log_path = os.path.join(args.output_dir, "evaluations.jsonl")
    if not args.replot:
        variants = variant_specs(args)
        dataset = prepare(args)
        from sagan_tf.config import presets

        training = presets.get_preset(args.preset).training
        steps = max(1, args.images // training.images_per_step)
        for variant in variants:
            spec = dict(dataset=dataset, image_size=args.image_size, preset=args.preset, steps=steps,
                        evaluations=args.evaluations, eval_samples=args.eval_samples,
                        output_dir=os.path.abspath(args.output_dir), subset_seed=args.subset_seed,
                        ada_kimg=args.ada_kimg, **variant)
            child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
            with open(log_path, "a") as log:
                for line in child.stdout:
                    if line.startswith("{"):
                        print(line.strip(), flush=True)
                        log.write(line)
                        log.flush()
            if child.wait():
                print(json.dumps({"kind": "error", "variant": variant_name(spec), "returncode": child.returncode}),
                      flush=True)
    with open(log_path) as log:
        records = [json.loads(line) for line in log if line.strip()]
    for summary in summaries(records):
        print(json.dumps(summary), flush=True)
    path = plot(records, os.path.join(args.output_dir, "quality_curves.png"),
                f"{args.preset} on {os.path.basename(str(args.dataset_dir or 'debian-icons'))} "
                f"({args.image_size}x{args.image_size}), domain-classifier figures")
    if path:
        print(json.dumps({"kind": "plot", "path": os.path.abspath(path)}), flush=True)


if __name__ == "__main__":
    main()
