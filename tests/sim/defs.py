"""Segment and audience definitions, and the edits a data team makes between runs.

Segments come from templates (name + random parameters), so an edit re-draws a
template's parameters; added segments get fresh keys, and only segments nothing
references are deleted (a deleted key may come back later: a new stay).
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

FIELDS = {
    "subscriber_fields": {"loyalty_points": "integer", "vip": "boolean"},
    "event_fields": {"delivered_at": "timestamp"},
}


def _template(kind: str, rng: random.Random, where_windows: bool) -> dict:
    days = rng.choice([1, 2, 3, 7, 14, 30])
    if kind == "state":
        return {"groups": [{"filters": [{"field": "state", "op": rng.choice(["is", "is_not"]),
                                         "value": rng.choice(["NY", "ca", "Tx"])}]}]}
    if kind == "tags":
        return {"groups": [{"filters": [{"field": "tags", "op": rng.choice(["has_any", "has_none", "has_all"]),
                                         "value": rng.sample(["webinar-attendee", "vip", "NEWSLETTER"], 1)}]}]}
    if kind == "buyers":
        return {"groups": [{"filters": [{"event": "purchase", "op": "performed", "in_last_days": days}]}]}
    if kind == "big_buyers":
        return {"groups": [{"filters": [{"event": "purchase", "op": "performed",
                                         "where": [{"field": "amount", "op": "gte", "value": rng.choice([50, 100.5])}],
                                         "count": {"op": rng.choice(["gte", "lt"]), "value": rng.choice([1, 2])}}]}]}
    if kind == "delivered":
        window = ({"field": "delivered_at", "op": "in_last_days", "value": rng.choice([1, 2])}
                  if where_windows else {"field": "product", "op": "is", "value": "MUG"})
        return {"groups": [{"filters": [{"event": "purchase", "op": "performed", "where": [window]}]}]}
    if kind == "engaged":
        return {"groups": [{"match": "any", "filters": [
            {"event": "email_open", "op": "performed", "in_last_days": days},
            {"event": "email_click", "op": "performed", "in_last_days": days}]}]}
    if kind == "new_people":
        return {"groups": [{"filters": [{"field": "created_at", "op": rng.choice(["in_last_days", "not_in_last_days"]),
                                         "value": rng.choice([3, 14, 30])}]}]}
    if kind == "vip_points":
        return {"match": "all", "groups": [
            {"filters": [{"field": "vip", "op": "is", "value": True}]},
            {"match": "any", "filters": [{"field": "loyalty_points", "op": "gte", "value": rng.choice([100, 500])},
                                         {"field": "age", "op": "between", "value": [30, 50]}]}]}
    if kind == "nobody":
        return {"groups": [{"match": "none", "filters": [
            {"field": "state", "op": "is", "value": "TX"}, {"field": "age", "op": "gt", "value": rng.choice([40, 60])},
            {"field": "city", "op": "is_set"}]}]}
    if kind == "no_opens":
        return {"groups": [{"filters": [{"event": "email_open", "op": "not_performed", "in_last_days": days}]}]}
    raise ValueError(kind)


# Core segments (audiences name them; never deleted) and their templates.
CORE = {"ny": "state", "webinar": "tags", "buyers": "buyers", "engaged": "engaged", "new_people": "new_people",
        "nobody": "nobody"}
OPTIONAL = ["big_buyers", "delivered", "vip_points", "no_opens", "state", "tags", "buyers"]


@dataclass
class Definitions:
    rng: random.Random
    where_windows: bool
    holdout: bool
    segments: dict[str, dict] = field(default_factory=dict)
    audiences: dict[str, dict] = field(default_factory=dict)
    counter: int = 0
    deleted: list[str] = field(default_factory=list)

    def initial(self) -> None:
        for key, kind in CORE.items():
            self.segments[key] = {"name": f"Segment {key}", **_template(kind, self.rng, self.where_windows)}
        for kind in ("big_buyers", "delivered", "vip_points", "no_opens"):
            self._add(kind)
        # A segment that reads others (evaluated after them in the same run).
        self.segments["ny_not_buyers"] = {"name": "NY, no purchase", "match": "all", "groups": [
            {"filters": [{"segment": "ny", "op": "is"}, {"segment": "buyers", "op": "is_not"}]}]}
        self.audiences["a_ny"] = self._audience(["ny", "webinar"], ["buyers"], ["email", "first_name", "city"])
        self.audiences["a_engaged"] = self._audience(["engaged"], [], ["tags"])
        self.audiences["a_all"] = self._audience(["ny", "engaged", "new_people"], ["nobody"],
                                                 ["email", "vip", "created_at", "loyalty_points"])

    def _audience(self, include: list[str], exclude: list[str], fields: list[str]) -> dict:
        audience = {"name": f"Audience of {'+'.join(include)}", "include": include, "fields": fields}
        if exclude:
            audience["exclude"] = exclude
        if self.holdout and self.rng.random() < 0.7:
            audience["holdout"] = {"percent": self.rng.choice([0, 10, 25, 50]), "salt": self.rng.choice(["bf", "x1"])}
        return audience

    def _add(self, kind: str | None = None) -> str:
        kind = kind or self.rng.choice(OPTIONAL)
        key = self.deleted.pop() if self.deleted and self.rng.random() < 0.5 else None
        if key is None:
            self.counter += 1
            key = f"x{self.counter:02d}_{kind}"
        self.segments[key] = {"name": f"Extra {key}", "description": "added by the simulation",
                              **_template(kind, self.rng, self.where_windows)}
        return key

    def _referenced(self) -> set[str]:
        used = set(CORE) | {"ny_not_buyers"}
        for audience in self.audiences.values():
            used |= set(audience["include"]) | set(audience.get("exclude", []))
        return used

    def edit(self) -> list[str]:
        """A few random edits; returns what was done (for failure messages)."""
        rng = self.rng
        done = []
        for _ in range(rng.randint(1, 3)):
            action = rng.choice(["edit_segment", "add_segment", "delete_segment", "edit_audience",
                                 "add_audience", "delete_audience"])
            if action == "edit_segment":
                key = rng.choice(sorted(k for k in self.segments if k != "ny_not_buyers"))
                kind = CORE.get(key) or key.split("_", 1)[1]
                self.segments[key] = {"name": self.segments[key]["name"] + " (edited)",
                                      **_template(kind, rng, self.where_windows)}
            elif action == "add_segment":
                key = self._add()
            elif action == "delete_segment":
                free = sorted(set(self.segments) - self._referenced())
                if not free:
                    continue
                key = rng.choice(free)
                del self.segments[key]
                self.deleted.append(key)
            elif action == "edit_audience":
                key = rng.choice(sorted(self.audiences))
                audience = self.audiences[key]
                if self.holdout and rng.random() < 0.5:
                    audience["holdout"] = {"percent": rng.choice([0, 5, 20, 50]), "salt": rng.choice(["bf", "zz"])}
                else:
                    audience["exclude"] = rng.sample(sorted(self.segments), 1)
                    if audience["exclude"][0] in audience["include"]:
                        del audience["exclude"]
            elif action == "add_audience":
                self.counter += 1
                key = f"a{self.counter:02d}"
                include = rng.sample(sorted(self.segments), rng.randint(1, 2))
                self.audiences[key] = self._audience(include, [], rng.choice([[], ["email"], ["state", "tags"]]))
            else:
                extra = sorted(k for k in self.audiences if k not in ("a_ny", "a_engaged", "a_all"))
                if not extra:
                    continue
                key = rng.choice(extra)
                del self.audiences[key]
            done.append(f"{action} {key}")
        return done

    def write(self, defs: Path) -> None:
        if defs.exists():
            shutil.rmtree(defs)
        (defs / "audiences").mkdir(parents=True)
        dumper = YAML(typ="safe", pure=True)
        dumper.dump(FIELDS, defs / "_fields.yaml")
        for key, body in self.segments.items():
            dumper.dump(body, defs / f"{key}.yaml")
        for key, body in self.audiences.items():
            dumper.dump(body, defs / "audiences" / f"{key}.yaml")
