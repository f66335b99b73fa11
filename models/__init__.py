"""einarray: models package."""
