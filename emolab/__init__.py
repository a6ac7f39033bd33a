"""emolab: a plugin-based lab bench for emotion directions in language models."""

__version__ = "0.1.0"
