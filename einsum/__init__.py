"""einarray: einsum package."""
