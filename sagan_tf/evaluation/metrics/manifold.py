"""Precision, recall, density and coverage of generated features against real ones, from k-NN balls.

They split what FID mixes: a bad FID can come from generated images that look like no real image (low precision,
low density: poor fidelity) or from real images that no generated image resembles (low recall, low coverage:
missing modes).

- Improved precision and recall (Kynkaenniemi et al., NeurIPS 2019, eqs. 1-3): the real manifold is the union of
  balls around each real feature with the distance to its k-th nearest real neighbour as radius; precision is the
  fraction of generated features inside it. Recall swaps the roles: the fraction of real features inside the
  generated manifold. k = 3, as in the paper.
- Density and coverage (Naeem et al., ICML 2020, eqs. 3-4): density = (1 / (k M)) sum_j sum_i 1[Y_j in B(X_i,
  NND_k(X_i))], how many real balls hold each generated sample on average (1 for a generator matching the real
  distribution; it can exceed 1); coverage = (1 / N) sum_i 1[some Y_j in B(X_i, NND_k(X_i))], the fraction of real
  balls holding at least one generated sample (robust to outliers among the generated samples).

Balls are closed (distance <= radius), and a sample is not its own neighbour: the k-th nearest neighbour is the
(k+1)-th smallest distance including the zero to itself, as in both papers' code.

Memory: the pairwise distances are computed exactly, in row blocks of `block_size` rows against a whole set, in
float64. With N real and M generated features of dimension d this holds float64 copies of the features
(8 (N + M) d bytes) and about two blocks (the distances and a partition or comparison of them, 8 * block_size *
max(N, M) bytes each); nothing grows as N * M. Callers cap N and M by sampling uniformly (`sagan_tf.evaluation` uses
the 10,000-row reservoirs it keeps for KID), so 50,000 generated samples still mean 10,000 x 10,000 distances,
computed 1,024 rows at a time: with Inception's d = 2048, 313 MiB of float64 features and 78 MiB per block (measured:
the process grew by 494 MiB over its 156 MiB of float32 inputs).
"""

import numpy as np

from sagan_tf.evaluation.metrics import scores

#: Nearest neighbour whose distance is a ball's radius (Kynkaenniemi et al. 2019 and Naeem et al. 2020 use 3 and 5).
DEFAULT_K = 3
#: Rows of one block of pairwise distances.
DEFAULT_BLOCK_SIZE = 1024


def _squared_norms(features):
    return np.einsum("ij,ij->i", features, features)


def _distance_block(rows, rows_sq, columns, columns_sq):
    """Euclidean distances [len(rows), len(columns)] from precomputed squared norms, clipped at 0 (rounding).

    Computed in place in the one [len(rows), len(columns)] buffer of the matrix product.
    """
    block = rows @ columns.T
    block *= -2.0
    block += rows_sq[:, None]
    block += columns_sq[None, :]
    np.maximum(block, 0.0, out=block)
    return np.sqrt(block, out=block)


def _check_k_and_block(k, block_size):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be a positive integer. Received: k={k!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"`block_size` must be a positive integer. Received: block_size={block_size!r}")


def nearest_neighbour_radii(features, k=DEFAULT_K, block_size=DEFAULT_BLOCK_SIZE):
    """The distance from each row of `features` to its k-th nearest other row.

    Args:
        features: [n, d] array, n > k.
        k: which neighbour.
        block_size: rows per block of distances (memory: 8 * block_size * n bytes).

    Returns:
        [n] float64 radii.

    Raises:
        ValueError: fewer than k + 1 rows, or bad `k`/`block_size`.
    """
    _check_k_and_block(k, block_size)
    features = np.asarray(scores.validate_activations("features", features, min_samples=k + 1), np.float64)
    squares = _squared_norms(features)
    radii = np.empty(features.shape[0], np.float64)
    for start in range(0, features.shape[0], block_size):
        block = _distance_block(features[start:start + block_size], squares[start:start + block_size], features,
                                squares)
        # Index k of the ascending distances: index 0 is the row itself (distance 0, or a duplicate's 0).
        radii[start:start + block_size] = np.partition(block, k, axis=1)[:, k]
    return radii


def precision_recall_density_coverage(real_features, fake_features, k=DEFAULT_K, block_size=DEFAULT_BLOCK_SIZE,
                                      real_radii=None):
    """Improved precision and recall (Kynkaenniemi et al. 2019) and density and coverage (Naeem et al. 2020).

    Args:
        real_features: [N, d] features of real images (N > k).
        fake_features: [M, d] features of generated images (M > k).
        k: the nearest neighbour that sets each ball's radius.
        block_size: rows per block of pairwise distances (see the module docstring for the memory this takes).
        real_radii: [N] radii of the real balls (`nearest_neighbour_radii(real_features, k)`), when already known:
            the real set is often fixed across evaluations.

    Returns:
        {"precision", "recall", "density", "coverage"} as Python floats; precision, recall and coverage in [0, 1],
        density >= 0.

    Raises:
        ValueError: mismatched feature dimensions, too few rows, radii of the wrong shape.
    """
    _check_k_and_block(k, block_size)
    real = np.asarray(scores.validate_activations("real_features", real_features, min_samples=k + 1), np.float64)
    fake = np.asarray(scores.validate_activations("fake_features", fake_features, min_samples=k + 1), np.float64)
    if real.shape[1] != fake.shape[1]:
        raise ValueError("Real and generated features differ in dimension. Received: "
                         f"real_features.shape={real.shape}, fake_features.shape={fake.shape}")
    if real_radii is None:
        real_radii = nearest_neighbour_radii(real, k, block_size)
    real_radii = np.asarray(real_radii, np.float64)
    if real_radii.shape != (real.shape[0],):
        raise ValueError(f"`real_radii` must have one radius per real row, shape ({real.shape[0]},). "
                         f"Received: real_radii.shape={real_radii.shape}")
    fake_radii = nearest_neighbour_radii(fake, k, block_size)
    real_sq, fake_sq = _squared_norms(real), _squared_norms(fake)
    in_real_manifold = 0  # generated rows inside at least one real ball
    real_balls_hit = 0  # (generated row, real ball) pairs with the row inside the ball
    real_covered = np.zeros(real.shape[0], bool)  # real balls holding at least one generated row
    real_in_fake_manifold = np.zeros(real.shape[0], bool)  # real rows inside at least one generated ball
    for start in range(0, fake.shape[0], block_size):
        distances = _distance_block(fake[start:start + block_size], fake_sq[start:start + block_size], real, real_sq)
        inside_real = distances <= real_radii[None, :]
        in_real_manifold += int(np.count_nonzero(inside_real.any(axis=1)))
        real_balls_hit += int(np.count_nonzero(inside_real))
        real_covered |= inside_real.any(axis=0)
        real_in_fake_manifold |= (distances <= fake_radii[start:start + block_size, None]).any(axis=0)
    return {
        "precision": in_real_manifold / fake.shape[0],
        "recall": float(np.mean(real_in_fake_manifold)),
        "density": real_balls_hit / (k * fake.shape[0]),
        "coverage": float(np.mean(real_covered)),
    }


__all__ = ["DEFAULT_K", "DEFAULT_BLOCK_SIZE", "nearest_neighbour_radii", "precision_recall_density_coverage"]
