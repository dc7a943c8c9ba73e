"""What ingest must do with each file of the bad-input corpus (see README.md).

Each case is ingested alone into a fresh data folder (after its `before` files,
if any). `reason` and quarantine reasons are substrings of the real message;
`rows` maps a key (subscriber_id / event_id) to values its lake row must have
(None = NULL); `absent` lists keys that must not be in the lake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

T = "20240105T060000Z"


@dataclass(frozen=True)
class Q:
    row: int
    reason: str
    raw: str | None = None  # exact raw text, when given


@dataclass(frozen=True)
class Case:
    file: str  # relative to tests/bad_inputs/
    outcome: str  # "rejected" | "loaded"
    reason: str = ""  # rejected: part of the reason
    quarantine: tuple[Q, ...] = ()
    rows: dict[str, dict] = field(default_factory=dict)
    absent: tuple[str, ...] = ()
    loaded: int | None = None  # rows in the lake
    warning: str = ""  # part of some warning
    before: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.file.split("/")[0]

    @property
    def id(self) -> str:
        return self.file.split("/", 1)[1]


S = "subscribers/"
E = "events/"
STATUS_WORDS = "is not one of active, unsubscribed, bounced, complained"

CASES: list[Case] = [
    # ------------------------------------------------ files rejected whole
    Case(f"{S}broken_quoting_{T}.csv", "rejected", "the CSV quoting is broken"),
    Case(f"{S}not_utf8_{T}.csv", "rejected", "not valid UTF-8 (first bad bytes in row 1)"),
    Case(f"{S}header_not_utf8_{T}.csv", "rejected", "not valid UTF-8 (in the header row)"),
    Case(f"{S}json_not_utf8_{T}.jsonl", "rejected", "not valid UTF-8 (line 2)"),
    Case(f"{S}reserved_column_{T}.csv", "rejected", "'_lake_source_row' is reserved"),
    Case(f"{S}semicolons_{T}.csv", "rejected", "seems to use ';' instead of a comma"),
    Case(f"{S}empty_{T}.csv", "rejected", "the file is empty"),
    Case(f"{S}corrupt_{T}.csv.gz", "rejected", "cannot be decompressed as gzip"),
    Case(f"{S}not_gzip_{T}.csv.gz", "rejected", "cannot be decompressed as gzip"),
    Case(f"{S}wrong_parquet_type_{T}.parquet", "rejected",
         "column 'age' has Parquet type string, but the catalog declares integer"),
    Case(f"{S}not_parquet_{T}.parquet", "rejected", "not readable Parquet"),
    Case(f"{S}subscribers.csv", "rejected", "carries no time"),
    Case(f"{S}subscribers_2024-01-05.csv", "rejected", "carries no time"),
    Case(f"{S}subscribers_20241340T250000Z.csv", "rejected", "'20241340T250000Z' in the file name is not a valid"),
    Case(f"{S}missing_required_column_{T}.csv", "rejected", "missing required column 'email'"),
    Case(f"{S}events_in_wrong_folder_{T}.csv", "rejected", "missing required columns 'email', 'status'"),
    Case(f"{S}duplicate_header_{T}.csv", "rejected", "column 'email' appears twice in the header"),
    Case(f"{S}unnamed_column_{T}.csv", "rejected", "header column 4 has no name"),
    # A JSONL export of no rows (blank lines only, or an empty file) loads nothing.
    Case(f"{S}json_blank_{T}.jsonl", "loaded", loaded=0, warning="the snapshot has no subscribers"),
    Case(f"{S}json_missing_key_{T}.jsonl", "rejected", "missing required column 'status'"),
    Case(f"{E}subscribers_in_wrong_folder_{T}.csv", "rejected", "missing required columns 'event_id', 'event'"),
    # ------------------------------------------------ bad rows quarantined
    Case(f"{S}bad_timestamp_{T}.csv", "loaded", loaded=1, quarantine=(
        Q(2, "column 'created_at': 'yesterday' is not an ISO 8601 timestamp", "s2,b@example.com,active,yesterday"),
        Q(3, "column 'created_at': '2024-13-01T00:00:00' is not"),
    ), rows={"s1": {"created_at": datetime(2024, 1, 1, 10, 0)}}),
    Case(f"{S}bad_integer_{T}.csv", "loaded", loaded=1, quarantine=(
        Q(2, "column 'age': 'forty' is not an integer", "s2,b@example.com,active,forty"),
    ), rows={"s1": {"age": 34}}),
    Case(f"{S}integer_with_decimals_{T}.csv", "loaded", loaded=1, quarantine=(
        Q(1, "column 'age': '42.0' is not an integer"),
    ), rows={"s2": {"age": 7}}),
    Case(f"{S}unknown_status_{T}.csv", "loaded", loaded=2, quarantine=(
        Q(3, f"column 'status': 'pending' {STATUS_WORDS}", "s3,c@example.com,pending,Cy"),
    ), warning="1 row(s) quarantined (first: row 3"),
    Case(f"{S}missing_id_{T}.csv", "loaded", loaded=1, quarantine=(
        Q(2, "column 'subscriber_id' is required but missing", ",b@example.com,active,Bob"),
        Q(3, "column 'subscriber_id' is required but missing", "   ,c@example.com,active,Cy"),
    )),
    Case(f"{S}duplicate_ids_{T}.csv", "loaded", loaded=2, quarantine=(
        Q(1, "duplicate subscriber_id 's1': row 3 has the same subscriber_id", "s1,old@example.com,active,Old"),
    ), rows={"s1": {"email": "new@example.com", "status": "unsubscribed", "first_name": "New"}}),
    Case(f"{S}invalid_email_{T}.csv", "loaded", loaded=1, quarantine=(
        Q(1, "column 'email': 'not-an-email' is not a valid email address"),
        Q(2, "column 'email': 'b@example' is not a valid email address"),
        Q(3, "column 'email': 'c d@example.com' is not a valid email address"),
        Q(5, "column 'email' is required but missing"),
    ), rows={"s4": {"email": "ok@example.com"}}),
    Case(f"{S}huge_cell_{T}.csv", "loaded", loaded=1, quarantine=(
        # quarantine.raw keeps the first 65,536 characters of the row, and says so
        Q(1, "column 'first_name' holds 100,000 characters (more than the 65,536 allowed) "
             "(raw row cut to its first 65,536 of 100,024 characters)",
          ("s1,a@example.com,active," + "x" * 100_000)[:65_536]),
    ), rows={"s2": {"first_name": "Bob"}}),
    Case(f"{S}broken_line_{T}.jsonl", "loaded", loaded=2, quarantine=(
        Q(2, "the line is not valid JSON", '{"subscriber_id": "s2", "email": '),
    ), absent=("s2",)),
    Case(f"{S}ragged_row_{T}.csv", "loaded", loaded=2, quarantine=(
        Q(2, "the row has 2 cells but the header has 4 columns", "s2,b@example.com"),
        Q(3, "the row has 5 cells but the header has 4 columns", "s3,c@example.com,active,Smith, Cy"),
    ), rows={"s4": {"first_name": "Dee"}}),
    Case(f"{S}booleans_mixed_case_{T}.csv", "loaded", loaded=3, quarantine=(
        Q(4, "column 'vip': 'yes' is not a boolean"),
    ), rows={"s1": {"vip": True}, "s2": {"vip": False}, "s3": {"vip": True}}),
    Case(f"{S}bad_date_{T}.csv", "loaded", loaded=1, quarantine=(
        Q(2, "column 'birthday': '2023-02-29' is not a date"),
        Q(3, "column 'birthday': '05/01/1990' is not a date"),
    ), rows={"s1": {"birthday": date(1990, 5, 1)}}),
    # A quoted value over two lines is one record: row numbers count records, not lines.
    Case(f"{S}multiline_value_{T}.csv", "loaded", loaded=2, quarantine=(
        Q(3, f"column 'status': 'nope' {STATUS_WORDS}", "s3,c@example.com,nope,Cy"),
    ), rows={"s1": {"first_name": "Ann\nMarie"}, "s2": {"first_name": 'Bob "the builder"'}}),
    # Blank lines are not records.
    Case(f"{S}blank_lines_{T}.csv", "loaded", loaded=1, quarantine=(Q(2, f"'wrong' {STATUS_WORDS}"),)),
    Case(f"{S}json_wrong_kind_{T}.jsonl", "loaded", loaded=1, quarantine=(
        Q(2, "column 'postal_code': expected a string, got a JSON number 2134"),
        Q(3, "column 'age': expected an integer, got a JSON string \"41\""),
        Q(4, "column 'vip': expected true or false, got a JSON string \"true\""),
    ), rows={"s1": {"postal_code": "02134", "tags": ["vip", "b"], "age": 41, "vip": True}}),
    Case(f"{S}json_huge_number_{T}.jsonl", "loaded", loaded=1, quarantine=(
        Q(2, "column 'age': '1" + "0" * 56 + "...' is not an integer"),
        Q(3, "the line is not valid JSON (a number of more than 4,300 digits)"),
    ), rows={"s1": {"age": 41}}, absent=("s2", "s3")),
    # JSONL row numbers are line numbers (the blank line 2 counts).
    Case(f"{S}json_not_object_{T}.jsonl", "loaded", loaded=2, quarantine=(
        Q(3, "the line is a JSON array, not a JSON object", "[1, 2]"),
        Q(4, "the line is a JSON string, not a JSON object", '"s3"'),
    ), rows={"s4": {"status": "bounced", "shoe_size": "42"}}, warning="undeclared column 'shoe_size'"),
    Case(f"{E}missing_occurred_at_{T}.csv", "loaded", loaded=1, quarantine=(
        Q(2, "column 'occurred_at' is required but missing", "e2,s1,purchase,,10"),
    )),
    Case(f"{E}bad_amount_{T}.csv", "loaded", loaded=1, quarantine=(
        Q(1, "column 'amount': '12,50' is not a number", 'e1,s1,purchase,2024-01-04T10:00:00Z,"12,50"'),
        Q(3, "column 'amount': 'abc' is not a number"),
    ), rows={"e2": {"amount": 100.0}}),
    Case(f"{E}parquet_not_finite_{T}.parquet", "loaded", loaded=2, quarantine=(
        Q(2, "column 'amount': 'nan' is not a number"),
        Q(3, "column 'amount': 'inf' is not a number"),
    ), rows={"e1": {"amount": 1.5}, "e4": {"amount": None}}),
    Case(f"{E}json_nan_{T}.jsonl", "loaded", loaded=1, quarantine=(
        Q(1, "column 'amount': 'nan' is not a number"),
        Q(2, "column 'amount': '-inf' is not a number"),
    ), rows={"e3": {"amount": 2.0}}, absent=("e1", "e2")),
    # ------------------------------------------------ accepted as they are
    Case(f"{S}bom_{T}.csv", "loaded", loaded=1, rows={"s1": {"first_name": "Ann"}}),
    Case(f"{S}header_only_{T}.csv", "loaded", loaded=0, warning="the snapshot has no subscribers"),
    Case(f"{S}offsets_{T}.csv", "loaded", loaded=7, rows={
        "s1": {"created_at": datetime(2024, 1, 5, 8, 0)},
        "s2": {"created_at": datetime(2024, 1, 5, 15, 0)},
        "s3": {"created_at": datetime(2024, 1, 5, 10, 0)},
        "s4": {"created_at": datetime(2024, 1, 5, 10, 0)},
        "s5": {"created_at": datetime(2024, 1, 5, 9, 0, 0, 250_000)},
        "s6": {"created_at": datetime(2024, 1, 5, 0, 0)},
        "s7": {"created_at": datetime(2023, 12, 31, 19, 0)},
    }),
    Case(f"{S}tags_spaces_{T}.csv", "loaded", loaded=4, rows={
        "s1": {"tags": ["vip", "webinar-attendee"]}, "s2": {"tags": None}, "s3": {"tags": None},
        "s4": {"tags": ["Solo"]},
    }),
    Case(f"{S}postal_leading_zeros_{T}.csv", "loaded", loaded=3, rows={
        "s1": {"postal_code": "02134"}, "s2": {"postal_code": "00501"}, "s3": {"postal_code": "1e5"},
    }),
    Case(f"{S}extra_column_{T}.csv", "loaded", loaded=2, rows={
        "s1": {"favourite_colour": "teal"}, "s2": {"favourite_colour": None},
    }, warning="undeclared column 'favourite_colour' kept as text"),
    Case(f"{S}missing_optional_{T}.csv", "loaded", loaded=1, rows={
        "s1": {"first_name": None, "age": None, "tags": None, "created_at": None, "vip": None, "birthday": None},
    }),
    Case(f"{S}status_case_{T}.csv", "loaded", loaded=2, rows={
        "s1": {"status": "active"}, "s2": {"status": "unsubscribed"},
    }),
    Case(f"{S}blank_strings_{T}.csv", "loaded", loaded=1, rows={
        "s1": {"email": "a@example.com", "first_name": None, "city": None},
    }),
    Case(f"{S}crlf_{T}.csv", "loaded", loaded=2, rows={"s2": {"first_name": "Bob"}}),
    Case(f"{S}header_case_{T}.csv", "loaded", loaded=1, rows={"s1": {"email": "a@example.com"}}),
    Case(f"{S}no_final_newline_{T}.csv", "loaded", loaded=1, rows={"s1": {"first_name": "Ann"}}),
    Case(f"{S}parquet_zoned_{T}.parquet", "loaded", loaded=1, rows={
        "s1": {"created_at": datetime(2024, 1, 5, 9, 0), "age": 34, "status": "active", "tags": ["vip"]},
    }),
    Case(f"{E}seen_before_{T}.csv", "loaded", loaded=1, before=("support/events/earlier_export_20240104T000000Z.csv",),
         rows={"e1": {"amount": 5.0}, "e3": {"event": "open"}},
         warning="1 event(s) ignored: their event_id was already seen"),
    Case(f"{E}duplicate_in_file_{T}.csv", "loaded", loaded=2, rows={"e1": {"amount": 1.0}},
         warning="1 event(s) ignored"),
    Case(f"{E}header_only_{T}.csv", "loaded", loaded=0),
]
