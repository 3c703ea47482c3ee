"""Printables: the printer's palette and colour transfer, calibration charts, and print-ready files."""
