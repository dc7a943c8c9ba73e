"""Dagster definitions: the asset graph, its schedules and sensors, over `pipelines.run`."""
