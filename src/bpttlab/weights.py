"""Reading a user's recurrent matrix ``W_hh`` from a ``.npy`` or ``.pt`` file.

``.npy`` files are read without pickle; ``.pt`` files with ``torch.load(weights_only=True)``
(torch is imported only then), so no file can run code here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bpttlab._util import ConfigError

__all__ = ["load_matrix"]


def _read(path: Path, key: str | None) -> np.ndarray:
    """The raw array in the file: a .npy array, or one tensor of a .pt file."""
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        import torch

        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not an array file, a pickle of arbitrary objects, truncated...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        why = f"cannot be read as {path.suffix}: {first}"
        raise ConfigError("weights", str(path), why) from None
    if isinstance(obj, dict):
        names = [key] if key else [k for k in obj if "weight_hh" in str(k)]
        entries = ", ".join(map(str, obj)) or "none"
        if key is not None and key not in obj:
            raise ConfigError("key", key, f"{path} has no entry {key!r}; its entries: {entries}")
        if len(names) != 1 or names[0] not in obj:
            raise ConfigError("weights", str(path), "cannot tell which entry is W_hh; pass "
                              f"--key, one of: {entries}")  # fmt: skip
        obj = obj[names[0]]
    elif key is not None:
        raise ConfigError("key", key, f"{path} holds one tensor, not a state dict: drop --key")
    if not isinstance(obj, torch.Tensor):
        raise ConfigError("weights", str(path), f"holds a {type(obj).__name__}, not a tensor")
    if obj.is_complex():
        raise ConfigError("weights", str(path), f"holds {obj.dtype} entries: W_hh must be real")
    return obj.detach().to(torch.float64).numpy()  # bfloat16 has no numpy dtype


def load_matrix(path: str | Path, key: str | None = None) -> np.ndarray:
    """A square, finite, real W_hh (H, H) float64 from ``path``: a ``.npy`` array, or a ``.pt``
    tensor or state dict (the one entry whose name holds ``weight_hh``, or the entry ``key``).

    Raises:
        ConfigError: naming ``weights`` (or ``key``) and what is wrong with the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("weights", str(path), "no such file")
    if path.suffix not in (".npy", ".pt"):
        raise ConfigError("weights", str(path), "the file must end in .npy or .pt")
    if key is not None and path.suffix == ".npy":
        raise ConfigError("key", key, f"{path} is a .npy array, not a state dict: drop --key")
    w = np.asarray(_read(path, key))
    if np.iscomplexobj(w) or w.dtype.kind not in "fiub":
        raise ConfigError("weights", str(path), f"holds {w.dtype} entries: W_hh must be real")
    w = w.astype(np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        gates = {3: "a GRU's", 4: "an LSTM's"}.get(w.shape[0] // max(w.shape[-1], 1))
        stacked = (w.ndim == 2 and gates is not None and w.shape[0] % w.shape[1] == 0
                   and w.shape[0] > w.shape[1])  # fmt: skip
        hint = (
            (
                f" (this looks like {gates} weight_hh: its gates' H x H blocks stacked; the "
                "spectrum is defined for a plain RNN's W_hh)"
            )
            if stacked
            else ""
        )
        raise ConfigError("weights", str(path), f"has shape {w.shape}: W_hh must be a "
                          f"non-empty square matrix{hint}")  # fmt: skip
    if not np.isfinite(w).all():
        raise ConfigError("weights", str(path), "holds NaN or inf entries: W_hh must be finite")
    return w
