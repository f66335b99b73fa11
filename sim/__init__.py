"""einarray: sim package."""
