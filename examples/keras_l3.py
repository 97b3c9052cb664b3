"""The L3 study note's Keras model, diagnosed: ``Embedding(10000, 128)`` over 50 tokens,
``LSTM(128)``, ``Dense(10000, softmax)``, ``Adam(clipnorm=1.0)``, on Keras 3's torch backend.

    python examples/keras_l3.py
    bpttlab diagnose --model examples/keras_l3.py:factory

``factory`` returns the model wrapped in ``KerasRecurrent``, a torch module that routes the LSTM
layer's steps through ``.cell`` where the probe reads ``dL/dh_t`` (the LSTM runs Keras's generic
loop, ``use_cudnn=False``, for the profiled forward only). ``bpttlab diagnose`` feeds float
batches (B, T, 1): integer values are used as token ids as they are, other values in [-1, 1]
are mapped linearly onto the vocabulary (its default batch puts the class, -1 or 1, in the
first step and small noise after it: tokens 0 or 9999, then tokens near 5000).

(the keras extra: ``pip install 'bpttlab[keras]'``; KERAS_BACKEND must be torch.)
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

from typing import Any  # noqa: E402

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from bpttlab.integrations.keras import (  # noqa: E402
    KerasRecurrent,
    build_l3_model,
    diagnose,
    l3_batch,
    l3_loss,
)

VOCAB = 10000


def tokens_of(x: Tensor) -> Tensor:
    """(B, T) or (B, T, 1) floats -> (B, T) token ids."""
    x = x[..., 0] if x.dim() == 3 else x  # (B, T)
    if torch.equal(x, x.round()) and x.min() >= 0:
        return x.long().clamp(max=VOCAB - 1)
    return ((x.clamp(-1, 1) + 1) / 2 * (VOCAB - 1)).round().long()


def factory(input_size: int = 1, output_size: int = 2) -> dict[str, Any]:
    """For ``bpttlab diagnose --model examples/keras_l3.py:factory``: the model (float32) and
    its compiled loss, sparse categorical cross-entropy of the softmax output at step T."""
    adapter = KerasRecurrent(build_l3_model("float32", seed=0), prepare=tokens_of)

    def loss(probs: Tensor, target: Tensor) -> Tensor:
        return l3_loss(target.long())(probs)

    return {"model": adapter, "loss": loss, "probe": {"cell": adapter.cell}}


def main() -> None:
    torch.set_num_threads(1)  # a batch this small runs fastest on one thread
    model = build_l3_model("float64", seed=0)  # untrained, float64: the audit's setting
    tokens, target = l3_batch(batch=32, length=50, seed=0)
    d = diagnose(model, tokens, l3_loss(target))
    horizon = d.horizon if d.horizon is not None else f"beyond {d.T}"
    print(f"L3 model at T={d.T}: {d.verdict}, ||dL/dh_0|| / ||dL/dh_T|| = {d.ratio:.3g}, "
          f"{d.factor_per_step:.3g} per step, horizon {horizon}")  # fmt: skip


if __name__ == "__main__":
    main()
