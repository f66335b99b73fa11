"""einarray: hw package."""
