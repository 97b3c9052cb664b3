"""Views: figures and the report. Nothing here trains or computes a result; each view reads
results (the store's, or an experiment's) and draws them.

- :mod:`bpttlab.views.plots`: static matplotlib figures (PNG).
- :mod:`bpttlab.views.figures`: interactive plotly figures, one per result (``.figure()`` of
  ``Profile``, ``Diagnosis`` and the experiment results draws through them).
- :mod:`bpttlab.views.report`: the self-contained HTML report (``bpttlab report``); its
  script and style are ``report.js`` and ``report.css`` beside it.
- :mod:`bpttlab.views.summary`: the tour's ``summary.md``.

plotly is the ``report`` extra: ``figures`` and ``report`` import it, ``plots`` and
``summary`` do not.
"""
