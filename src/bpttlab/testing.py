"""Slow reference implementations, for tests and benchmarks only (never the product path)."""

from __future__ import annotations

import numpy as np

__all__ = ["lesson_loop"]


def lesson_loop(W: np.ndarray, d: np.ndarray) -> list[float]:
    """The lesson's NumPy loop, as printed: build ``D = np.diag(f')``, form ``J = D @ W`` and fold
    it into the running product in forward order, ``grad = grad @ J``, taking a Frobenius norm
    each step. O(H^3) per step for the diag construction plus O(H^3) for the product.

    Arguments:
        W: (H, H) recurrent matrix.
        d: (T, H) derivatives f'(z_1)..f'(z_T).

    Returns:
        T + 1 Frobenius norms, starting with ``||I||_F``.
    """
    grad = np.eye(W.shape[0])
    norms = [float(np.linalg.norm(grad))]
    for t in range(d.shape[0]):
        D = np.diag(d[t])  # (H, H)
        J = D @ W  # (H, H)
        grad = grad @ J  # J_1 J_2 ... J_t: forward order
        norms.append(float(np.linalg.norm(grad)))
    return norms
