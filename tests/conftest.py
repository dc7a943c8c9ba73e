"""Shared fixtures: a tiny but complete project (definitions + landing files) on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.core.settings import Paths

REPO = Path(__file__).resolve().parent.parent
# A copy of ../shared/spec/examples/segment_defs, so tests run wherever the repo is cloned.
SPEC_EXAMPLES = REPO / "tests" / "fixtures" / "spec_examples" / "segment_defs"

SUBSCRIBERS_CSV = """subscriber_id,email,status,first_name,city,state,signup_form,created_at,tags,age,loyalty_points,vip,birthday
s1,ann@example.com,active,Ann,New York,NY,Checkout,2026-11-20T10:00:00Z,webinar-attendee|VIP,34,120,true,1990-05-01
s2,bob@example.com,unsubscribed,Bob,Buffalo,ny,Homepage,2025-01-01T00:00:00Z,Webinar-Attendee,51,,false,
s3,cy@example.com,active,Cy,Boston,MA,NYC meetup form,2026-11-01 08:00:00,new-customer,,5,,
s4,dee@example.com,bounced,Dee,Albany,NY,Checkout,2026-11-25T00:00:00+02:00,,29,0,true,
s5,eve@example.com,active,Eve,Austin,TX,Blog footer,2024-06-01T00:00:00Z,webinar-2026| newsletter ,44,900,false,1980-12-31
"""

EVENTS_CSV = """event_id,subscriber_id,event,occurred_at,amount,product,campaign
e1,s1,purchase,2026-11-21T12:00:00Z,49.5,mug,
e2,s3,purchase,2026-11-10T12:00:00Z,12,shirt,
e3,s3,purchase,2026-09-01T12:00:00Z,80,hoodie,
e4,s5,email_open,2026-11-26T09:00:00Z,,,bf-2026
e5,s2,email_click,2026-10-01T09:00:00Z,,,oct
e6,s4,purchase,2026-11-28T09:00:00Z,10,mug,
"""

AS_OF = "2026-11-27T06:00:00Z"


def write_project(root: Path, *, subscribers: str = SUBSCRIBERS_CSV, events: str = EVENTS_CSV,
                  snapshot_name: str = "subscribers_20261127T050000Z.csv") -> Paths:
    defs = root / "segment_defs"
    shutil.copytree(SPEC_EXAMPLES, defs)
    data = root / "data"
    (data / "landing" / "subscribers").mkdir(parents=True)
    (data / "landing" / "events").mkdir(parents=True)
    (data / "landing" / "subscribers" / snapshot_name).write_text(subscribers)
    (data / "landing" / "events" / "events_20261127T050000Z.csv").write_text(events)
    return Paths(defs=defs, data=data)


@pytest.fixture
def project_paths(tmp_path) -> Paths:
    return write_project(tmp_path)
