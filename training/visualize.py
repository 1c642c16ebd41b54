r"""Draws a training run's samples, attention maps and interpolations: `python -m training.visualize --model_dir=...`.

Restores the generator (the EMA weights unless --noema) of the latest checkpoint, or of --checkpoint (latest, best
or a step number), and writes into --output_dir (default <model_dir>/visualize):

    samples.png         one row per class (up to 16 classes), --samples_per_class images each, labelled with the
                        run's class names (see sagan_tf.run.restore.class_names_of)
    attention_maps.png  --num_images images with the --query_points marked, then where each self-attention layer
                        looks from each query point (SAGAN paper, figure 5; see sagan_tf/sampling/attention_maps.py)
    interpolation.png   with --interpolate: rows of latent interpolations at a fixed class (spherical, or linear
                        with --interpolation=linear), then rows of class interpolations at a fixed latent (the
                        class-conditional batch-norm parameters blended), --interpolation_steps images per row,
                        each row labelled with its class names (see sagan_tf/sampling/interpolation.py)

Query points are pixel coordinates "row,col" of the generated image, separated by ';'. A run whose generator has
no self-attention layer still gets samples.png, then the command fails (exit status 2) naming the problem; pass
--noattention to write only the samples. Bad input, and a picture the filesystem refuses to write (full, read-only,
no permission; no partial PNG is left), end with a one-paragraph error and exit status 2. It reads a run that is
training without taking its lock (`sagan_tf.run.run_lock`).

    python -m training.visualize --model_dir=runs/synthetic32
    python -m training.visualize --model_dir=runs/synthetic32 --query_points="4,4;16,16;28,8" --num_images=8
    python -m training.visualize --model_dir=runs/synthetic32 --interpolate --interpolation_steps=10
"""

import json
import os

from absl import flags

from sagan_tf import cli


def define_flags(flag_values=flags.FLAGS):
    """Defines the command's flags on `flag_values` (called only when this module runs as a program)."""
    flags.DEFINE_string("model_dir", None, "Training run directory (config.json, checkpoints/).", required=True,
                        flag_values=flag_values)
    flags.DEFINE_string("checkpoint", "latest", "Checkpoint: latest, best (the best evaluated during training, "
                        "checkpoints/best/), a step number or a path prefix.", flag_values=flag_values)
    flags.DEFINE_bool("ema", True, "Use the EMA generator (--noema: the raw generator weights).",
                      flag_values=flag_values)
    flags.DEFINE_integer("num_images", 4, "Generated images (rows) in attention_maps.png.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_string("query_points", None, "Query pixels 'row,col;row,col;...' of the generated image. Default: "
                        "three points at (1/4, 1/4), (1/2, 3/4) and (3/4, 3/8) of the image size.",
                        flag_values=flag_values)
    flags.DEFINE_integer("samples_per_class", 8, "Images per row of samples.png.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_integer("seed", 0, "Seed of the latent vectors.", flag_values=flag_values)
    flags.DEFINE_bool("attention", True, "Write attention_maps.png (--noattention: only samples.png).",
                      flag_values=flag_values)
    flags.DEFINE_bool("interpolate", False, "Also write interpolation.png: latent and class interpolations.",
                      flag_values=flag_values)
    flags.DEFINE_integer("interpolation_steps", 8, "Images per interpolation row, both end points included.",
                         lower_bound=2, flag_values=flag_values)
    flags.DEFINE_enum("interpolation", "slerp", ["slerp", "linear"], "Path between two latents: spherical or "
                      "linear.", flag_values=flag_values)
    flags.DEFINE_string("output_dir", None, "Where to write the PNG files. Default: <model_dir>/visualize.",
                        flag_values=flag_values)


def visualize(model_dir, output_dir=None, checkpoint=None, use_ema=True, num_images=4, query_points=None,
              samples_per_class=8, seed=0, attention=True, interpolate=False, interpolation_steps=8,
              interpolation_method="slerp"):
    """Writes samples.png, (with `attention`) attention_maps.png and (with `interpolate`) interpolation.png.

    Returns:
      A JSON-able dict naming the checkpoint and the files written.

    Raises:
      UsageError: bad run directory, checkpoint or query points; or no attention layer when `attention` (after
        samples.png is written).
    """
    import numpy as np

    from sagan_tf.sampling import images, interpolation
    from sagan_tf.run import restore
    from sagan_tf.sampling import attention_maps as vis
    from sagan_tf.errors import UsageError
    from sagan_tf.run.run_dir import RunDirectory

    points = None if query_points is None else vis.parse_query_points(query_points)
    restored = restore.restore_generator(model_dir, checkpoint=checkpoint, use_ema=use_ema)
    model, generator = restored.config.model, restored.generator
    if points is not None:
        vis.check_query_points(points, model.image_size, model.image_size)
    output_dir = output_dir or RunDirectory(model_dir).visualize_dir
    num_classes = model.num_classes
    written = {**restore.describe(restored)}

    z, labels, _, _, _ = images.grid_inputs(model.latent_dim, num_classes, samples_per_class, seed=seed)
    generated = generator(z, labels, training=False)
    # Numbers stand in for the names of runs that recorded none and whose dataset is gone: "class <k>" reads better.
    class_names = restored.class_names if restored.class_names_source in ("run", "dataset") else None
    grid = images.labelled_grid(np.asarray(generated), labels, class_names)
    written["samples"] = os.path.join(output_dir, "samples.png")
    images.save_png(grid, written["samples"])
    if interpolate:
        rows = interpolation.interpolation_rows(generator, num_classes, model.latent_dim, steps=interpolation_steps,
                                                seed=seed, method=interpolation_method)
        written["interpolation"] = os.path.join(output_dir, "interpolation.png")
        images.save_png(interpolation.render(rows, class_names), written["interpolation"])
        written["interpolation_rows"] = [interpolation.row_label(row, class_names) for row in rows]

    if attention:
        if not generator.attention_layers:
            raise UsageError(
                f"{model_dir}/config.json describes a generator without self-attention layers "
                f"(g_attention_resolutions is empty), so there are no attention maps to draw; "
                f"{written['samples']} was written. Pass --noattention to write only the samples.")
        z = np.random.default_rng(seed).standard_normal((num_images, model.latent_dim)).astype("float32")
        labels = (np.arange(num_images) % num_classes).astype("int32") if num_classes else None
        result = vis.attention_maps(generator, z, labels, query_points=points)
        written["attention_maps"] = os.path.join(output_dir, "attention_maps.png")
        images.save_png(vis.render_attention_maps(result), written["attention_maps"])
        written["query_points"] = result.query_points.tolist()
    return written


@cli.main_wrapper
def main(argv, values=None):
    values = flags.FLAGS if values is None else values
    written = visualize(values.model_dir, output_dir=values.output_dir, checkpoint=values.checkpoint,
                        use_ema=values.ema, num_images=values.num_images, query_points=values.query_points,
                        samples_per_class=values.samples_per_class, seed=values.seed, attention=values.attention,
                        interpolate=values.interpolate, interpolation_steps=values.interpolation_steps,
                        interpolation_method=values.interpolation)
    print(json.dumps(written))
    return 0


if __name__ == "__main__":
    cli.run(main, define_flags)
