"""bpttlab: gradient flow through time in recurrent networks."""

__version__ = "0.1.0"
