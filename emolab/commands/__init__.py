"""Built-in command groups beyond the core ones in `emolab.cli`.

Each module here is a built-in plugin implementing `register_commands(cli)`, listed in
`emolab.plugins.DEFAULT_PLUGINS`, exactly as a third-party package would add commands.
"""
