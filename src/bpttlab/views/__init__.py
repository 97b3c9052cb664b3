"""Views: figures and the report. Nothing here trains or computes a result; each view reads
results (the store's, or an experiment's) and draws them.

- :mod:`bpttlab.views.plots`: static matplotlib figures (PNG).
"""
