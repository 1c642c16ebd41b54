"""Figures of evaluation results, drawn with matplotlib (Agg, no display needed).

    plots.truncation_tradeoff(records, "eval/truncation_step_00002000.png")

`truncation_tradeoff` draws the fidelity/variety trade-off of the truncation trick as BigGAN's figure 4 (Brock et
al. 2019) does: FID against Inception Score, one point per truncation, joined in truncation order and labelled
with it; and, where the records have them, precision against recall (Kynkäänniemi et al. 2019).
"""

import math


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panel(axis, records, x_name, y_name, x_label, y_label):
    # None (untruncated) sorts as the largest truncation.
    points = [(math.inf if r["truncation"] is None else r["truncation"], r[x_name], r[y_name]) for r in records
              if r.get(x_name) is not None and r.get(y_name) is not None]
    points.sort()
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    axis.plot(xs, ys, marker="o", color="tab:blue")
    for index, (truncation, x, y) in enumerate(points):
        label = "none" if math.isinf(truncation) else f"{truncation:g}"
        # Alternate above and below the line, so that labels of neighbouring points do not overlap.
        axis.annotate(f"t={label}", (x, y), textcoords="offset points", xytext=(6, 5 if index % 2 else -13),
                      fontsize=9)
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.grid(alpha=0.3)


def truncation_tradeoff(records, path, title=None, fid_name="fid", is_name="inception_score",
                        precision_name="precision", recall_name="recall"):
    """Writes the truncation trade-off figure of evaluation `records` to the PNG `path`.

    Args:
      records: dicts with "truncation" (a number, or None: untruncated) and the figures, one per truncation.
      path: the PNG file to write (its directory must exist).
      title: the figure's title.
      fid_name, is_name, precision_name, recall_name: the names of the figures in the records (they carry the
        classifier's name when figures of several classifiers must not share a name).

    Returns:
      `path`.
    """
    plt = pyplot()
    with_recall = any(r.get(precision_name) is not None and r.get(recall_name) is not None for r in records)
    figure, axes = plt.subplots(1, 2 if with_recall else 1, figsize=(11 if with_recall else 5.5, 4.5),
                                squeeze=False)
    _panel(axes[0, 0], records, is_name, fid_name, "Inception Score (higher: more confident classes)",
           "FID (lower: closer to the real images)")
    if with_recall:
        _panel(axes[0, 1], records, recall_name, precision_name, "recall (variety: real images covered)",
               "precision (fidelity: samples on the real manifold)")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    # Through a temporary sibling renamed into place: a full disk leaves no half-written PNG under `path`.
    from sagan_tf.run import atomic_write

    try:
        with atomic_write.replacing(path, "truncation plot") as temporary:
            figure.savefig(temporary, dpi=110, format="png")
    finally:
        plt.close(figure)
    return path


__all__ = ["pyplot", "truncation_tradeoff"]
