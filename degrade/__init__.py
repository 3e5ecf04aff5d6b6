"""Degradations as data: codec recipes, scalers and the synthesis of compressed low-resolution frames."""
