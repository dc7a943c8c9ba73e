"""Published state: history, audiences and the atomically swapped analyst warehouse.

No Dagster here: the assets in `pipelines/defs/` call these functions.
"""
