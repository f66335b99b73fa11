"""einarray: mapping package."""
