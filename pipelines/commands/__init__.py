"""The logic behind the `segments` commands that inspect and edit definitions.

Each module is plain library code (no typer, no printing): it returns
dataclasses that `pipelines/cli_render.py` turns into rich output or JSON.

- `common`    loading definitions for a command, clocks, snapshots, evaluation
- `show`      a segment's definition, SQL, size and size history
- `preview`   a draft (or saved) definition evaluated on the lake, writing nothing
- `explain`   why a subscriber is or is not a member, filter by filter
- `diff`      the edited definition against the last published membership
- `authoring` `segments new` and `segments delete`
"""
