"""einarray: design and simulate attention accelerators.

This thin app package holds the CLI and the ``run()`` flow; it is the only package
that may import all the others (einsum -> mapping -> sim, hw, models).
"""

__version__ = "0.1.0"
