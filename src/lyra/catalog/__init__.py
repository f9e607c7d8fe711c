"""The model catalogue: prices and limits per model (`models`) and what a call can cost (`estimate`)."""
