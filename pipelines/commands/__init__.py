"""The logic behind the `segments` commands that inspect and edit definitions.

Each module is plain library code (no typer, no printing): it returns
dataclasses that `pipelines/cli_render.py` turns into rich output or JSON.
"""
