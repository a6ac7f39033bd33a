"""The package version, in a module of its own so the core reads it without importing the
package facade (`emolab/__init__.py`, which reaches up to the notebook API)."""

__version__ = "0.1.0"
