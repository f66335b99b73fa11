"""Config loading for mapping/sim: the located YAML loader of :mod:`einsum.yamlsrc`.

Kept as an import path for existing callers; the fast loader (libyaml, shared scalar
constructor, file cache) now lives in einsum.yamlsrc itself.
"""

from einsum.yamlsrc import load, loads

__all__ = ["load", "loads"]
