"""Deterministic, vectorized sample subscribers and events.

Rows are made in fixed-size blocks, each drawing from its own generator seeded
with (seed, stream, block number): the data depends only on (n, as_of, seed),
never on how a caller chunks its writes, and memory stays bounded by one block.
Times are whole UTC seconds relative to `as_of` (nothing reads the clock); tables
use the project's canonical Arrow types (`fields.ARROW_TYPES`).
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.sample_data import vocab
from pipelines.segments.fields import ARROW_TYPES, FieldCatalog

_T = TypeVar("_T")
_U = TypeVar("_U")

# Rows per block; changing it changes the data for a seed. Small blocks are faster than
# big ones: their arrays stay in cache and freed memory is reused, not faulted in again.
BLOCK_ROWS = 1 << 16
# Worker threads making blocks; results never depend on it.
THREADS = min(4, os.cpu_count() or 1)

DAY = 86_400
_US_PER_S = 1_000_000
_SUBSCRIBER_STREAM, _EVENT_STREAM = 0, 1

# The custom fields declared by the example `segment_defs/_fields.yaml`.
CUSTOM_SUBSCRIBER_FIELDS = {"loyalty_points": "integer", "vip": "boolean", "birthday": "date"}
CUSTOM_EVENT_FIELDS = {"coupon": "string"}

SUBSCRIBER_SCHEMA = FieldCatalog.with_custom(CUSTOM_SUBSCRIBER_FIELDS, {}).subscriber_schema()
# Required event columns first, as the contract lists them (not the catalog's order).
_EVENT_FIELDS = {"event_id": "string", "subscriber_id": "string", "event": "string",
                 "occurred_at": "timestamp", "amount": "number", "product": "string", "campaign": "string",
                 **CUSTOM_EVENT_FIELDS}
EVENT_SCHEMA = pa.schema([(name, ARROW_TYPES[t]) for name, t in _EVENT_FIELDS.items()])
_EVENT_BODY_SCHEMA = pa.schema(list(EVENT_SCHEMA)[1:])

# Share of rows with a missing value, per column.
_MISSING = {"first_name": 0.02, "last_name": 0.03, "location": 0.04, "signup_form": 0.02, "age": 0.07,
            "vip": 0.15, "loyalty_points": 0.10, "birthday": 0.20}
_RECENT_SIGNUPS = 0.03  # extra share created in the last 30 days, on top of the long tail
_NY_MEETUP_SHARE = 0.12  # New York subscribers who signed up at the meetup
_TAG_VARIANT_SHARE = 0.06  # tags written in another casing ("Webinar-Attendee")
_LATE_EVENTS = 0.003  # events dated after as_of: must be ignored downstream
_EVENT_WINDOW = 365 * DAY


def _probabilities(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    return w / w.sum()


def _strings(values) -> pa.Array:
    return pa.array(list(values), pa.string())


def _weighted(rows, weight: int = 1) -> tuple[pa.Array, np.ndarray]:
    """A vocabulary table's first column as strings, and its weights as probabilities."""
    return _strings(row[0] for row in rows), _probabilities([row[weight] for row in rows])


# Lookup tables: the generator draws integer indices, then `take`s strings.
_STATUS, _STATUS_P = _weighted(vocab.STATUS_WEIGHTS)
_FIRST = _strings(vocab.FIRST_NAMES)
_LAST = _strings(vocab.LAST_NAMES)
# Every "first.last" local-part prefix, indexed by first * len(LAST_NAMES) + last.
_NAME_SLUGS = _strings(f"{first}.{last}" for first in map(vocab.email_slug, vocab.FIRST_NAMES)
                       for last in map(vocab.email_slug, vocab.LAST_NAMES))
# Zipf-like: the first names of each list are the most common.
_FIRST_P = _probabilities(1.0 / (np.arange(len(vocab.FIRST_NAMES)) + 8.0))
_LAST_P = _probabilities(1.0 / (np.arange(len(vocab.LAST_NAMES)) + 8.0))
_AT_DOMAIN, _DOMAIN_P = _weighted([(f"@{d}", w) for d, w in vocab.EMAIL_DOMAINS])
_CITY, _CITY_P = _weighted(vocab.CITIES, weight=4)
_STATE = _strings(c[1] for c in vocab.CITIES)
_CITY_ZIP0, _CITY_ZIPS = np.array([c[2:4] for c in vocab.CITIES], dtype=np.int64).T
_CITY_IN_NY = np.array([c[1] == "NY" for c in vocab.CITIES])
_COUNTRY = _strings(["US"])
_FORM, _FORM_P = _weighted(vocab.SIGNUP_FORMS)
_FORM_INDEX = {f: i for i, (f, _) in enumerate(vocab.SIGNUP_FORMS)}
_TAG_INDEX = {t: i for i, (t, _, _) in enumerate(vocab.TAGS)}
_TAG_P = np.array([p for _, _, p in vocab.TAGS])
# Canonical spelling at 2*i, the other casing at 2*i + 1.
_TAG_STRINGS = _strings(s for canonical, variant, _ in vocab.TAGS for s in (canonical, variant))

_EVENT, _EVENT_P = _weighted(vocab.EVENT_TYPES)
_EVENT_INDEX = {e: i for i, (e, _) in enumerate(vocab.EVENT_TYPES)}
_PRODUCT, _PRODUCT_P = _weighted(vocab.PRODUCTS)
_PRODUCT_PRICE = np.array([price for _, _, price in vocab.PRODUCTS])
_CAMPAIGN_KINDS = [k for k, _ in vocab.CAMPAIGN_KINDS] + ["webinar"]
_CAMPAIGN_P = _probabilities([w for _, w in vocab.CAMPAIGN_KINDS])
_COUPON, _COUPON_P = _weighted(vocab.COUPONS)


def as_of_seconds(as_of: datetime) -> int:
    """`as_of` as whole UTC epoch seconds; a naive datetime means UTC."""
    return math.floor(as_of.replace(tzinfo=as_of.tzinfo or UTC).timestamp())


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype(np.int64) * _US_PER_S, pa.timestamp("us"))


def _take(values: pa.Array, index: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """values[index], null where `missing` is true."""
    return values.take(pa.array(index, pa.int64(), mask=missing))


def _subscriber_block(block: int, start: int, stop: int, *, now: int, seed: int) -> pa.Table:
    """Subscribers number start+1 .. stop; every draw has a fixed size, so the
    block is a pure function of its arguments."""
    rng = np.random.default_rng([seed, _SUBSCRIBER_STREAM, block])
    k = stop - start

    def missing(column: str) -> np.ndarray:
        return rng.random(k) < _MISSING[column]

    numbers = np.arange(start + 1, stop + 1, dtype=np.int64)
    status = rng.choice(len(_STATUS), k, p=_STATUS_P)
    first = rng.choice(len(_FIRST), k, p=_FIRST_P)
    last = rng.choice(len(_LAST), k, p=_LAST_P)
    domain = rng.choice(len(_AT_DOMAIN), k, p=_DOMAIN_P)
    # The number keeps addresses unique: maria.garcia1234@example.com
    email = pc.binary_join_element_wise(_NAME_SLUGS.take(first * len(_LAST) + last),
                                        pc.cast(pa.array(numbers), pa.string()), _AT_DOMAIN.take(domain), "")

    city = rng.choice(len(_CITY), k, p=_CITY_P)
    no_location = missing("location")
    postal = _CITY_ZIP0[city] + rng.integers(0, _CITY_ZIPS[city])
    postal_code = pc.utf8_lpad(pa.array(postal, mask=no_location).cast(pa.string()), width=5, padding="0")
    in_ny = _CITY_IN_NY[city] & ~no_location

    # Signups over ~3 years, a little denser towards as_of, plus a batch of fresh ones.
    days_ago = 1095.0 * rng.random(k) ** 1.1
    days_ago = np.where(rng.random(k) < _RECENT_SIGNUPS, 30.0 * rng.random(k), days_ago)
    created = now - (days_ago * DAY).astype(np.int64)

    form = rng.choice(len(_FORM), k, p=_FORM_P)
    form = np.where(in_ny & (rng.random(k) < _NY_MEETUP_SHARE), _FORM_INDEX["NYC meetup form"], form)
    no_form = missing("signup_form")

    age = np.clip(np.rint(rng.normal(41.0, 14.0, k)), 18, 80).astype(np.int64)
    no_age = missing("age")
    vip = rng.random(k) < 0.06
    no_vip = missing("vip")
    points = np.rint(rng.exponential(350.0, k)).astype(np.int64) + np.where(vip, 2000, 0)
    # Birthdays agree with age (whole years before as_of, give or take the day).
    today = now // DAY
    birthday = today - (age * 365.25).astype(np.int64) - rng.integers(0, 365, k)
    no_birthday = no_age | missing("birthday")

    tags = _tags(rng, k, form=np.where(no_form, -1, form), days_ago=days_ago, vip=vip & ~no_vip, status=status)

    return pa.Table.from_arrays([
        numbered("sub_", start + 1, k, 7),
        email,
        _STATUS.take(status),
        _take(_FIRST, first, missing("first_name")),
        _take(_LAST, last, missing("last_name")),
        _take(_FORM, form, no_form),
        _take(_CITY, city, no_location),
        _take(_STATE, city, no_location),
        _take(_COUNTRY, np.zeros(k, np.int64), no_location),
        postal_code,
        pa.array(age, pa.int64(), mask=no_age),
        _timestamps(created),
        tags,
        pa.array(points, pa.int64(), mask=missing("loyalty_points")),
        pa.array(vip, pa.bool_(), mask=no_vip),
        pa.array(birthday.astype(np.int32), pa.date32(), mask=no_birthday),
    ], schema=SUBSCRIBER_SCHEMA)


def _tags(rng: np.random.Generator, k: int, *, form: np.ndarray, days_ago: np.ndarray, vip: np.ndarray,
          status: np.ndarray) -> pa.Array:
    """Independent draws per (subscriber, tag), with probabilities that follow the subscriber:
    webinar sign-ups attend webinars, fresh ones are new customers, lapsed ones at risk."""
    p = np.tile(_TAG_P, (k, 1))
    webinar_form = form == _FORM_INDEX["Webinar registration"]
    p[webinar_form, _TAG_INDEX["webinar-attendee"]] = 0.75
    p[webinar_form, _TAG_INDEX["webinar-2026"]] = 0.45
    p[days_ago < 90, _TAG_INDEX["new-customer"]] = 0.2
    p[days_ago < 30, _TAG_INDEX["new-customer"]] = 0.5
    p[vip, _TAG_INDEX["vip"]] = 0.7
    p[status != 0, _TAG_INDEX["churn-risk"]] = 0.3
    has = rng.random((k, len(_TAG_P)), dtype=np.float32) < p
    rows, cols = np.nonzero(has)  # row-major: each subscriber's tags stay together, in vocabulary order
    variant = rng.random(cols.size, dtype=np.float32) < _TAG_VARIANT_SHARE
    values = _TAG_STRINGS.take(cols * 2 + variant)
    offsets = np.zeros(k + 1, dtype=np.int32)
    np.cumsum(has.sum(axis=1), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _time_order(offsets: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative offsets below 2**32, as two 16-bit radix
    passes: numpy sorts 16-bit keys in linear time, int64 keys ~10x slower."""
    low = np.argsort((offsets & 0xFFFF).astype(np.uint16), kind="stable")
    high = np.argsort((offsets[low] >> 16).astype(np.uint16), kind="stable")
    return low[high]


def _event_block(subs: pa.Table, *, now: int, seed: int, block: int, per_subscriber: float) -> pa.Table:
    """Events of the subscribers in `subs`, without `event_id` (see `_with_event_ids`)."""
    rng = np.random.default_rng([seed, _EVENT_STREAM, block])
    k = subs.num_rows
    created = pc.cast(subs["created_at"], pa.int64()).fill_null(0).to_numpy() // _US_PER_S
    checkout = pc.equal(subs["signup_form"], "Checkout").fill_null(False).to_numpy(zero_copy_only=False)

    # Nobody acts before signing up; the export covers the last year.
    window_start = np.clip(created, now - _EVENT_WINDOW, now)
    span = now - window_start
    # A Checkout signup is a purchase: one event at signup time.
    signup_buy = checkout & (created >= now - _EVENT_WINDOW) & (created <= now)
    buyers = np.flatnonzero(signup_buy)

    # Skewed activity: most subscribers do little, a few do a lot. The rate is
    # trimmed so the total averages `per_subscriber` including signup purchases.
    rate = max(per_subscriber - buyers.size / max(k, 1), 0.0)
    counts = rng.poisson(rate * rng.gamma(0.6, 1 / 0.6, k))
    owner = np.repeat(np.arange(k), counts)
    m = owner.size
    kind = rng.choice(len(_EVENT), m, p=_EVENT_P)
    at = window_start[owner] + (rng.random(m) * span[owner]).astype(np.int64)
    # Real exports carry a few future-dated events (clock skew, scheduled sends).
    at = np.where(rng.random(m) < _LATE_EVENTS, now + rng.integers(60, 3 * DAY, m), at)

    purchase = _EVENT_INDEX["purchase"]
    owner = np.concatenate([owner, buyers])
    kind = np.concatenate([kind, np.full(buyers.size, purchase)])
    at = np.concatenate([at, np.minimum(created[buyers] + rng.integers(30, 900, buyers.size), now)])
    first_buy = np.concatenate([np.zeros(m, bool), np.ones(buyers.size, bool)])
    # A block's events are in time order (ties keep generation order); the file is
    # ordered block by block, like an export concatenated from several shards.
    order = _time_order(at - (now - _EVENT_WINDOW))
    owner, kind, at, first_buy = owner[order], kind[order], at[order], first_buy[order]
    n = owner.size

    is_purchase = kind == purchase
    is_email = (kind == _EVENT_INDEX["email_open"]) | (kind == _EVENT_INDEX["email_click"])
    is_webinar = kind == _EVENT_INDEX["webinar_registered"]
    product = rng.choice(len(_PRODUCT), n, p=_PRODUCT_P)
    with_product = is_purchase | ((kind == _EVENT_INDEX["page_view"]) & (rng.random(n) < 0.6))
    amount = np.round(_PRODUCT_PRICE[product] * rng.lognormal(0.0, 0.45, n), 2)

    # Campaigns are named by kind and month: "newsletter-2026-03".
    month = at.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    lo, hi = (int(month.min()), int(month.max())) if n else (0, 0)
    months = np.datetime_as_string(np.arange(lo, hi + 1).astype("datetime64[M]"), unit="M")
    campaign_kind = np.where(is_webinar, len(_CAMPAIGN_KINDS) - 1, rng.choice(len(_CAMPAIGN_P), n, p=_CAMPAIGN_P))
    names = _strings(f"{kind_}-{m_}" for kind_ in _CAMPAIGN_KINDS for m_ in months)
    with_campaign = is_email | is_webinar | (is_purchase & (rng.random(n) < 0.15))
    campaign = _take(names, campaign_kind * len(months) + (month - lo), ~with_campaign)

    coupon = np.where(first_buy & (rng.random(n) < 0.4), 0, rng.choice(len(_COUPON), n, p=_COUPON_P))
    with_coupon = is_purchase & ((first_buy & (coupon == 0)) | (rng.random(n) < 0.25))

    return pa.Table.from_arrays([
        subs["subscriber_id"].take(pa.array(owner, pa.int64())),
        _EVENT.take(kind),
        _timestamps(at),
        pa.array(amount, pa.float64(), mask=~is_purchase),
        _take(_PRODUCT, product, ~with_product),
        campaign,
        _take(_COUPON, coupon, ~with_coupon),
    ], schema=_EVENT_BODY_SCHEMA)


def _ordered_map(fn: Callable[[_T], _U], items: Iterable[_T]) -> Iterator[_U]:
    """`map(fn, items)` on a thread pool (numpy and Arrow release the GIL), results
    in input order, with a few items in flight so memory stays bounded."""
    with ThreadPoolExecutor(THREADS) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * THREADS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def numbered(prefix: str, first: int, count: int, width: int) -> pa.Array:
    """prefix + zero-padded first .. first+count-1, like `f"{prefix}{i:0{width}d}"`:
    numbers wider than `width` keep all their digits."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(first, first + count)), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _blocks(n: int) -> Iterator[tuple[int, int, int]]:
    """(block number, first row, end row) of each block of n rows."""
    for block, start in enumerate(range(0, n, BLOCK_ROWS)):
        yield block, start, min(start + BLOCK_ROWS, n)


def _with_event_ids(events: pa.Table, first_number: int, prefix: str = "evt_") -> pa.Table:
    """Ids follow the export order across blocks, so they are added once blocks are back in order."""
    ids = numbered(prefix, first_number, events.num_rows, 10)
    return events.add_column(0, EVENT_SCHEMA.field("event_id"), ids)


def generate_subscribers(n: int, *, as_of: datetime, seed: int = 7) -> pa.Table:
    """n subscribers `sub_0000001`.. as of `as_of`; deterministic for (n, as_of, seed)."""
    now = as_of_seconds(as_of)
    blocks = _ordered_map(lambda rows: _subscriber_block(*rows, now=now, seed=seed), _blocks(n))
    return pa.concat_tables([SUBSCRIBER_SCHEMA.empty_table(), *blocks])


def generate_events(subscribers: pa.Table, *, as_of: datetime, seed: int = 7, per_subscriber: float = 2.0
                    ) -> pa.Table:
    """About `per_subscriber` events per subscriber over the year before `as_of` (a few
    after it), with unique `event_id`s `evt_0000000001`.."""
    now = as_of_seconds(as_of)
    parts, next_event = [EVENT_SCHEMA.empty_table()], 1
    for block, start, stop in _blocks(subscribers.num_rows):
        events = _event_block(subscribers.slice(start, stop - start), now=now, seed=seed, block=block,
                              per_subscriber=per_subscriber)
        parts.append(_with_event_ids(events, next_event))
        next_event += events.num_rows
    return pa.concat_tables(parts)
