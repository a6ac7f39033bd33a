"""The Textual face of emolab (`emolab tui`): screens over the same steps as the CLI."""
