"""Optional integrations, each an extra imported only when used:

- ``bpttlab.integrations.tensorboard``: ``TensorBoardSink`` for ``GradientFlowMonitor``
  (``pip install 'bpttlab[tensorboard]'``).
- ``bpttlab.integrations.lightning``: ``GradientFlowCallback``, a PyTorch Lightning callback
  (``pip install 'bpttlab[lightning]'``).
- ``bpttlab.integrations.keras``: gradient profiles of Keras 3 models on the torch backend
  (``pip install 'bpttlab[keras]'``, ``KERAS_BACKEND=torch``).

Importing this package imports none of them.
"""

__all__: list[str] = []
