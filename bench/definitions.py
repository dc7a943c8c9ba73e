"""Deterministic benchmark definitions: N segments (and a few audiences) as YAML.

    python bench/definitions.py --count 100 --out bench/data/defs-100

The set mixes every operator of every field type, groups `all`/`any`/`none`,
segment references in a few dependency waves, and event filters with
windows, `where` and `count`, over the fields the sample data fills
(`pipelines.sample_data.vocab` and the example `_fields.yaml`). Values are
drawn from the sample vocabulary so most filters select someone. The same
(count, seed) always gives the same files, byte for byte.

Roughly: 55% of segments reference nothing (wave 0); the rest reference 1-2
segments of earlier waves, up to wave 3. Event filters draw from a pool of
(event, window, where) combinations, so, as in real projects, many segments
share an event aggregate.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path

try:
    import pipelines  # noqa: F401
except ImportError:  # running from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.sample_data import vocab
from pipelines.sample_data.generate import CUSTOM_EVENT_FIELDS, CUSTOM_SUBSCRIBER_FIELDS

# The sample data's as_of (bench/generate.py DEFAULT_AS_OF); absolute dates sit around it.
REFERENCE_DAY = date(2026, 11, 1)

FIELDS_YAML = "subscriber_fields:\n" + "".join(
    f"  {name}: {kind}\n" for name, kind in CUSTOM_SUBSCRIBER_FIELDS.items()
) + "event_fields:\n" + "".join(f"  {name}: {kind}\n" for name, kind in CUSTOM_EVENT_FIELDS.items())

_STATUSES = [s for s, _ in vocab.STATUS_WEIGHTS]
_FORMS = [f for f, _ in vocab.SIGNUP_FORMS]
_TAGS = [t for t, _, _ in vocab.TAGS]
_TAG_VARIANTS = [v for _, v, _ in vocab.TAGS]
_CITIES = sorted({c[0] for c in vocab.CITIES})
_STATES = sorted({c[1] for c in vocab.CITIES})
_EVENTS = [e for e, _ in vocab.EVENT_TYPES]
_PRODUCTS = [p for p, _, _ in vocab.PRODUCTS]
_COUPONS = [c for c, _ in vocab.COUPONS]
_CAMPAIGN_KINDS = [k for k, _ in vocab.CAMPAIGN_KINDS] + ["webinar"]
_FIRST = list(vocab.FIRST_NAMES[:40])
_LAST = list(vocab.LAST_NAMES[:40])
_WINDOWS = [7, 14, 30, 60, 90, 180, 365]


def _day(rng: random.Random, back_min: int, back_max: int) -> str:
    return (REFERENCE_DAY - timedelta(days=rng.randint(back_min, back_max))).isoformat()


def _pick(rng: random.Random, values: list, k: int) -> list:
    return rng.sample(values, min(k, len(values)))


# --------------------------------------------------------------------------- field filters
# Each maker returns one field filter dict; together they cover every operator of
# every type (`tests`-style coverage is checked by `operator_coverage`).


def _string_filter(rng: random.Random) -> dict:
    kind = rng.choice(["status", "state", "city", "signup_form", "first_name", "last_name", "email", "postal_code",
                       "country"])
    if kind == "status":
        op = rng.choice(["is", "is_not", "in", "not_in"])
        value = rng.choice(_STATUSES) if op in ("is", "is_not") else _pick(rng, _STATUSES, 2)
        return {"field": "status", "op": op, "value": value}
    if kind == "state":
        op = rng.choice(["is", "is_not", "in", "not_in", "is_set", "is_not_set"])
        if op in ("is_set", "is_not_set"):
            return {"field": "state", "op": op}
        value = rng.choice(_STATES).lower() if op in ("is", "is_not") else _pick(rng, _STATES, rng.randint(2, 6))
        return {"field": "state", "op": op, "value": value}
    if kind == "city":
        op = rng.choice(["is", "in", "not_in", "starts_with", "contains", "not_contains"])
        if op in ("is",):
            return {"field": "city", "op": op, "value": rng.choice(_CITIES).upper()}
        if op in ("in", "not_in"):
            return {"field": "city", "op": op, "value": _pick(rng, _CITIES, rng.randint(2, 8))}
        if op == "starts_with":
            return {"field": "city", "op": op, "value": rng.choice(["San", "New", "Port", "Bo", "Ch"])}
        return {"field": "city", "op": op, "value": rng.choice(["an", "or", "ton", "york", "ville"])}
    if kind == "signup_form":
        op = rng.choice(["is", "is_not", "in", "ends_with", "is_not_set"])
        if op == "is_not_set":
            return {"field": "signup_form", "op": op}
        if op == "in":
            return {"field": "signup_form", "op": op, "value": _pick(rng, _FORMS, 2)}
        if op == "ends_with":
            return {"field": "signup_form", "op": op, "value": rng.choice(["form", "page", "out", "footer"])}
        return {"field": "signup_form", "op": op, "value": rng.choice(_FORMS)}
    if kind == "first_name":
        op = rng.choice(["in", "starts_with", "is_set"])
        if op == "is_set":
            return {"field": "first_name", "op": op}
        if op == "in":
            return {"field": "first_name", "op": op, "value": _pick(rng, _FIRST, rng.randint(3, 10))}
        return {"field": "first_name", "op": op, "value": rng.choice("ABCDJKLMRS")}
    if kind == "last_name":
        op = rng.choice(["not_in", "ends_with", "is_not_set"])
        if op == "is_not_set":
            return {"field": "last_name", "op": op}
        if op == "not_in":
            return {"field": "last_name", "op": op, "value": _pick(rng, _LAST, rng.randint(3, 10))}
        return {"field": "last_name", "op": op, "value": rng.choice(["son", "ez", "er", "s"])}
    if kind == "email":
        op = rng.choice(["ends_with", "contains", "not_contains"])
        value = {"ends_with": rng.choice([".net", ".org", "@example.com", "mail.example.com"]),
                 "contains": rng.choice(["maria", "smith", "john", ".lee", "1"]),
                 "not_contains": rng.choice(["example.com", "garcia", "9"])}[op]
        return {"field": "email", "op": op, "value": value}
    if kind == "postal_code":
        op = rng.choice(["starts_with", "in", "is_set"])
        if op == "is_set":
            return {"field": "postal_code", "op": op}
        if op == "in":
            return {"field": "postal_code", "op": op, "value": [f"{rng.randint(10001, 10040):05d}" for _ in range(5)]}
        return {"field": "postal_code", "op": op, "value": rng.choice(["0", "1", "9", "100", "021", "94"])}
    return {"field": "country", "op": rng.choice(["is", "is_not"]), "value": rng.choice(["US", "us"])}


def _number_filter(rng: random.Random) -> dict:
    field = rng.choice(["age", "age", "loyalty_points"])
    low, high = (18, 80) if field == "age" else (0, 3000)
    op = rng.choice(["is", "is_not", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"])
    if op in ("is_set", "is_not_set"):
        return {"field": field, "op": op}
    if op in ("is", "is_not"):
        return {"field": field, "op": op, "value": rng.randint(low, low + (high - low) // 3)}
    if op in ("in", "not_in"):
        return {"field": field, "op": op, "value": sorted(rng.sample(range(low, high), 6))}
    if op == "between":
        a = rng.randint(low, high)
        b = rng.randint(low, high)
        return {"field": field, "op": op, "value": [min(a, b), max(a, b)]}
    value = rng.randint(low, high)
    if rng.random() < 0.3:
        value = value + 0.5  # integer and number mix (rule 5)
    return {"field": field, "op": op, "value": value}


def _boolean_filter(rng: random.Random) -> dict:
    op = rng.choice(["is", "is", "is_not", "is_set", "is_not_set"])
    if op in ("is_set", "is_not_set"):
        return {"field": "vip", "op": op}
    return {"field": "vip", "op": op, "value": rng.choice([True, False])}


def _temporal_filter(rng: random.Random) -> dict:
    field = rng.choice(["created_at", "created_at", "birthday"])
    ops = ["before", "after", "on", "between", "in_last_days", "not_in_last_days", "is_set", "is_not_set"]
    op = rng.choice(ops)
    if op in ("is_set", "is_not_set"):
        return {"field": field, "op": op}
    if op in ("in_last_days", "not_in_last_days"):
        days = rng.choice([7, 30, 90, 180, 365, 730]) if field == "created_at" else rng.choice([3650, 12000, 20000])
        return {"field": field, "op": op, "value": days}
    back = (0, 1100) if field == "created_at" else (7000, 23000)
    if op == "between":
        a, b = sorted([_day(rng, *back), _day(rng, *back)])
        return {"field": field, "op": op, "value": [a, b]}
    return {"field": field, "op": op, "value": _day(rng, *back)}


def _list_filter(rng: random.Random) -> dict:
    op = rng.choice(["has_any", "has_any", "has_all", "has_none", "is_set", "is_not_set"])
    if op in ("is_set", "is_not_set"):
        return {"field": "tags", "op": op}
    tags = _pick(rng, _TAGS, rng.randint(1, 3) if op != "has_all" else 2)
    tags = [t if rng.random() > 0.2 else _TAG_VARIANTS[_TAGS.index(t)] for t in tags]  # case-insensitive
    return {"field": "tags", "op": op, "value": tags}


_FIELD_MAKERS = [(_string_filter, 40), (_number_filter, 15), (_boolean_filter, 5), (_temporal_filter, 15),
                 (_list_filter, 25)]


def _field_filter(rng: random.Random) -> dict:
    makers, weights = zip(*_FIELD_MAKERS, strict=True)
    return rng.choices(makers, weights)[0](rng)


# --------------------------------------------------------------------------- event filters


def _where(rng: random.Random, event: str) -> list[dict]:
    options: list[dict] = []
    if event == "purchase":
        options += [
            {"field": "amount", "op": rng.choice(["gte", "gt", "lt"]), "value": rng.choice([20, 50, 100, 25.5])},
            {"field": "amount", "op": "between", "value": [10, 60]},
            {"field": "product", "op": "in", "value": _pick(rng, _PRODUCTS, 3)},
            {"field": "product", "op": "is_not", "value": rng.choice(_PRODUCTS)},
            {"field": "coupon", "op": rng.choice(["is", "is_set", "is_not_set"]), "value": rng.choice(_COUPONS)},
        ]
    elif event in ("email_open", "email_click", "webinar_registered"):
        options += [
            {"field": "campaign", "op": "starts_with", "value": rng.choice(_CAMPAIGN_KINDS)},
            {"field": "campaign", "op": "contains", "value": rng.choice(["2026", "2026-0", "-10"])},
            {"field": "campaign", "op": "not_contains", "value": "promo"},
        ]
    else:  # page_view
        options += [
            {"field": "product", "op": "is_set"},
            {"field": "product", "op": "is", "value": rng.choice(_PRODUCTS).lower()},
        ]
    chosen = rng.choice(options)
    if chosen["op"] in ("is_set", "is_not_set"):
        chosen = {"field": chosen["field"], "op": chosen["op"]}
    return [chosen]


def _event_pool(rng: random.Random, size: int) -> list[dict]:
    """Distinct-ish (event, window, where) combinations that segments share."""
    pool = []
    for _ in range(size):
        event = rng.choices(_EVENTS, [3, 2, 1, 4, 1])[0]
        spec: dict = {"event": event}
        if rng.random() < 0.8:
            spec["in_last_days"] = rng.choice(_WINDOWS)
        if rng.random() < 0.4:
            spec["where"] = _where(rng, event)
        pool.append(spec)
    return pool


def _event_filter(rng: random.Random, pool: list[dict]) -> dict:
    spec = dict(rng.choice(pool))
    out = {"event": spec["event"], "op": rng.choices(["performed", "not_performed"], [4, 1])[0]}
    if "in_last_days" in spec:
        out["in_last_days"] = spec["in_last_days"]
    if "where" in spec:
        out["where"] = spec["where"]
    if rng.random() < 0.35:
        out["count"] = rng.choice([{"op": "gte", "value": 2}, {"op": "gt", "value": 1}, {"op": "lt", "value": 2},
                                   {"op": "lte", "value": 1}, {"op": "is", "value": 1}, {"op": "gte", "value": 3}])
    return out


# --------------------------------------------------------------------------- segments


def _wave_of(index: int, count: int) -> int:
    share = index / max(count, 1)
    return 0 if share < 0.55 else 1 if share < 0.8 else 2 if share < 0.93 else 3


_NEGATIVE_OPS = {"is_not", "not_in", "not_contains", "has_none", "is_not_set", "not_in_last_days", "not_performed"}


# Positive filters that still hold for most subscribers: not used to open a group.
_BROAD = {("status", "is"), ("status", "in"), ("country", "is"), ("first_name", "is_set"), ("postal_code", "is_set"),
          ("state", "is_set"), ("state", "in"), ("tags", "is_set"), ("vip", "is_set"), ("age", "is_set"),
          ("loyalty_points", "is_set"), ("birthday", "is_set"), ("created_at", "is_set"), ("last_name", "ends_with")}


def _is_positive(f: dict) -> bool:
    """Neither a negation nor a filter most subscribers pass."""
    if f["op"] in _NEGATIVE_OPS or (f.get("field"), f["op"]) in _BROAD:
        return False
    if "event" in f:
        return f.get("count", {}).get("op", "gte") not in ("lt", "lte")
    return f["op"] not in ("lt", "lte", "gt", "gte", "before", "after") or rng_free_side(f)


def rng_free_side(f: dict) -> bool:
    """A range on age / loyalty points / dates is selective on the narrow side only."""
    value = f["value"]
    if f["field"] == "age":
        return (f["op"] in ("gt", "gte") and value >= 55) or (f["op"] in ("lt", "lte") and value <= 28)
    if f["field"] == "loyalty_points":
        return f["op"] in ("gt", "gte") and value >= 600
    return f["op"] == "after" and value >= "2026-01-01" or f["op"] == "before" and value <= "2024-01-01"


def _filter(rng: random.Random, pool: list[dict], positive: bool | None) -> dict:
    """One field or event filter: `positive` True asks for one that holds for a minority,
    False for a broad one or a negation (narrowing a group down a little), None for any."""
    while True:
        f = _event_filter(rng, pool) if rng.random() < 0.3 else _field_filter(rng)
        if positive is None or _is_positive(f) == positive:
            return f


_COUNT_OPS = ("gt", "gte", "lt", "lte", "is")


def _cover_every_operator(rng: random.Random, pool: list[dict], segments: dict[str, dict], hosts: list[str]) -> None:
    """Add a filter for each field operator and count operator the draw missed
    (to the last group of a wave-0 segment, round robin), so every set of 20 or
    more segments exercises every operator."""
    if len(segments) < 20:
        return
    from pipelines.segments.operators import OPERATORS

    used = operator_coverage(segments)
    missing: list[dict] = []
    for op in OPERATORS:
        if ("field", op) not in used:
            while (f := _field_filter(rng))["op"] != op:
                pass
            missing.append(f)
    for op in _COUNT_OPS:
        if ("count", op) not in used:
            f = {"event": rng.choice(pool)["event"], "op": "performed", "count": {"op": op, "value": 2}}
            missing.append(f)
    for index, f in enumerate(missing):
        host = segments[hosts[(index * 7) % len(hosts)]]
        host["groups"][-1]["filters"].append(f)


def _polarity(rng: random.Random, match: str, index: int, referencing: bool) -> bool | None:
    """What kind of filter the `index`-th of a group should be (see `_filter`)."""
    if match == "none":
        return None
    if match == "any" or (index == 0 and not referencing):
        return True
    return rng.random() < 0.15  # mostly broad filters and negations after the first


def build_definitions(count: int, seed: int = 1) -> tuple[dict[str, dict], dict[str, dict]]:
    """(segments, audiences): key -> definition mapping, deterministic for (count, seed).

    Shaped like real targeting: a group's first filter (and every filter of an
    `any` group) is positive, negations narrow a group down, and a `none`
    group only excludes from the groups before it, so most segments are a
    minority of subscribers (a tail of broad ones remains).
    """
    rng = random.Random(seed)
    pool = _event_pool(rng, max(8, count // 4))
    keys = [f"seg_{i:04d}" for i in range(count)]
    waves = [_wave_of(i, count) for i in range(count)]
    by_wave: dict[int, list[str]] = {}
    segments: dict[str, dict] = {}
    for index, key in enumerate(keys):
        wave = waves[index]
        n_groups = rng.choices([1, 2, 3], [5, 3, 1])[0]
        segment_match = "any" if n_groups == 1 else rng.choices(["any", "all"], [1, 3])[0]
        groups = []
        for g in range(n_groups):
            match = rng.choices(["all", "any", "none"], [6, 3, 1])[0]
            if match == "none" and (g == 0 or segment_match != "all"):
                match = "all"
            n_filters = rng.choices([1, 2, 3], [3, 4, 2])[0]
            referencing = wave > 0 and g == 0
            if referencing:
                n_filters = min(n_filters, 1)

            filters = [_filter(rng, pool, _polarity(rng, match, i, referencing)) for i in range(n_filters)]
            if referencing:
                # One or two references to segments of earlier waves, at least one of the previous wave.
                previous = by_wave[wave - 1]
                earlier = [k for w in range(wave) for k in by_wave[w]]
                refs = [rng.choice(previous)]
                if rng.random() < 0.4:
                    refs.append(rng.choice(earlier))
                for i, ref in enumerate(dict.fromkeys(refs)):
                    op = "is" if i == 0 or match == "any" else rng.choices(["is", "is_not"], [1, 1])[0]
                    filters.insert(i, {"segment": ref, "op": op})
            group: dict = {"filters": filters}
            if match != "all" or rng.random() < 0.5:
                group["match"] = match
            groups.append(group)
        definition: dict = {"name": f"Benchmark segment {index}"}
        if rng.random() < 0.5:
            definition["description"] = f"Generated for the benchmark (wave {wave})."
        if segment_match != "any" or rng.random() < 0.3:
            definition["match"] = segment_match
        definition["groups"] = groups
        segments[key] = definition
        by_wave.setdefault(wave, []).append(key)

    _cover_every_operator(rng, pool, segments, [k for k in keys if waves[keys.index(k)] == 0])

    audiences: dict[str, dict] = {}
    for a in range(min(5, max(1, count // 20))):
        include = _pick(rng, keys, rng.randint(1, 3))
        exclude = _pick(rng, [k for k in keys if k not in include], rng.randint(0, 2))
        audience: dict = {"name": f"Benchmark audience {a}", "include": include}
        if exclude:
            audience["exclude"] = exclude
        if a % 2 == 0:
            audience["fields"] = ["email", "first_name", "city"]
        audiences[f"audience_{a:02d}"] = audience
    return segments, audiences


def _yaml(value, indent: int = 0) -> str:
    """Block YAML for dicts/lists of scalars; scalars as JSON (valid YAML flow scalars)."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, dict | list) and v and not _flat(v):
                lines.append(f"{pad}{k}:\n{_yaml(v, indent + 1)}")
            else:
                lines.append(f"{pad}{k}: {_flow(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict) and not _flat(item):
                body = _yaml(item, indent + 1).lstrip()
                lines.append(f"{pad}- {body}")
            else:
                lines.append(f"{pad}- {_flow(item)}")
        return "\n".join(lines)
    return pad + _flow(value)


def _flat(value) -> bool:
    """A dict/list of scalars (or lists of scalars) is written in flow style."""
    items = value.values() if isinstance(value, dict) else value
    return all(not isinstance(v, dict | list) or (isinstance(v, list) and all(not isinstance(x, dict | list)
                                                                             for x in v)) for v in items)


def _flow(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def write_definitions(out: Path, count: int, seed: int = 1) -> Path:
    """Write `count` segments, a few audiences and `_fields.yaml` into `out` (replaced)."""
    segments, audiences = build_definitions(count, seed)
    if out.exists():
        shutil.rmtree(out)
    (out / "audiences").mkdir(parents=True)
    (out / "_fields.yaml").write_text(FIELDS_YAML)
    for key, definition in segments.items():
        (out / f"{key}.yaml").write_text(_yaml(definition) + "\n")
    for key, definition in audiences.items():
        (out / "audiences" / f"{key}.yaml").write_text(_yaml(definition) + "\n")
    return out


def operator_coverage(segments: dict[str, dict]) -> set[tuple[str, str]]:
    """(kind, operator) pairs used, e.g. ('field', 'has_all'), ('group', 'none')."""
    used: set[tuple[str, str]] = set()
    for definition in segments.values():
        used.add(("segment", definition.get("match", "any")))
        for group in definition["groups"]:
            used.add(("group", group.get("match", "all")))
            for f in group["filters"]:
                if "field" in f:
                    used.add(("field", f["op"]))
                elif "segment" in f:
                    used.add(("reference", f["op"]))
                else:
                    used.add(("event", f["op"]))
                    used.add(("count", f.get("count", {}).get("op", "gte")))
                    for w in f.get("where", []):
                        used.add(("where", w["op"]))
    return used


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    write_definitions(args.out, args.count, args.seed)
    print(f"wrote {args.count} segments to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
