"""Independent NumPy implementations of the network pieces, used as references in tests."""

import numpy as np


def conv2d_same(x, kernel, bias=None):
    """Stride-1 'same' convolution (TensorFlow padding: the extra row/column goes after).

    Args:
      x: (batch, H, W, Cin).
      kernel: (kh, kw, Cin, Cout).
      bias: (Cout,) or None.

    Returns:
      (batch, H, W, Cout) float64.
    """
    kh, kw = kernel.shape[:2]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    padded = np.pad(x.astype(np.float64), ((0, 0), (top, kh - 1 - top), (left, kw - 1 - left), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for i in range(kh):
        for j in range(kw):
            out += padded[:, i:i + height, j:j + width, :] @ kernel[i, j].astype(np.float64)
    return out if bias is None else out + bias


def upsample_nearest(x):
    """Nearest-neighbour 2x upsampling of an NHWC array."""
    return x.repeat(2, axis=1).repeat(2, axis=2)


def avg_pool2(x):
    """2x2 average pooling with stride 2 of an NHWC array."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def batch_norm(x, mean, variance, gamma, beta, epsilon):
    """(x - mean) / sqrt(variance + epsilon) * gamma + beta, broadcasting over the last axis."""
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def relu(x):
    return np.maximum(x, 0.0)
