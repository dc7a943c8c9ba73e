"""The segment definition language: load, validate and model definitions (no Dagster here)."""

from .fields import FieldCatalog
from .loader import load_project, load_segment_file
from .model import Audience, EventCount, EventFilter, FieldFilter, Group, Project, Segment, SegmentFilter
from .problems import Problem

__all__ = [
    "Audience", "EventCount", "EventFilter", "FieldCatalog", "FieldFilter", "Group", "Problem",
    "Project", "Segment", "SegmentFilter", "load_project", "load_segment_file",
]
