"""The ibledger version: one home, importable from every layer without importing the package's facade."""

__version__ = "0.1.0"
