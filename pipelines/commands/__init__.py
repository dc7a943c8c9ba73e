"""The `segments` commands' logic: no typer, no printing; `cli_render` lays out what they return."""
