"""Writes the bad-input corpus next to this file (run once; the files are committed).

    .venv/bin/python tests/bad_inputs/make_corpus.py

Each file is one case; `cases.py` holds what ingest must do with it. The time
in every name is 2024-01-05T06:00:00Z unless the name itself is the case.
"""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
T = "20240105T060000Z"
HEADER = "subscriber_id,email,status,first_name"


def write(relative: str, content: str | bytes) -> None:
    path = HERE / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)


def subscribers() -> None:
    s = "subscribers/"
    write(f"{s}broken_quoting_{T}.csv",
          f'{HEADER}\ns1,a@example.com,active,Ann\ns2,b@example.com,active,"Bob\ns3,c@example.com,active,Cy\n')
    write(f"{s}not_utf8_{T}.csv", f"{HEADER}\ns1,a@example.com,active,".encode() + "Renée\n".encode("latin-1"))
    write(f"{s}bom_{T}.csv", b"\xef\xbb\xbf" + f"{HEADER}\ns1,a@example.com,active,Ann\n".encode())
    write(f"{s}semicolons_{T}.csv", "subscriber_id;email;status\ns1;a@example.com;active\n")
    write(f"{s}header_only_{T}.csv", f"{HEADER}\n")
    write(f"{s}empty_{T}.csv", b"")
    write(f"{s}bad_timestamp_{T}.csv", "subscriber_id,email,status,created_at\n"
          "s1,a@example.com,active,2024-01-01T10:00:00Z\ns2,b@example.com,active,yesterday\n"
          "s3,c@example.com,active,2024-13-01T00:00:00\n")
    write(f"{s}bad_integer_{T}.csv", "subscriber_id,email,status,age\n"
          "s1,a@example.com,active,34\ns2,b@example.com,active,forty\n")
    write(f"{s}integer_with_decimals_{T}.csv", "subscriber_id,email,status,age\n"
          "s1,a@example.com,active,42.0\ns2,b@example.com,active,+7\n")
    write(f"{s}unknown_status_{T}.csv", f"{HEADER}\ns1,a@example.com,active,Ann\n"
          "s2,b@example.com,unsubscribed,Bob\ns3,c@example.com,pending,Cy\n")
    write(f"{s}missing_id_{T}.csv", f"{HEADER}\ns1,a@example.com,active,Ann\n,b@example.com,active,Bob\n"
          "   ,c@example.com,active,Cy\n")
    write(f"{s}duplicate_ids_{T}.csv", f"{HEADER}\ns1,old@example.com,active,Old\ns2,b@example.com,active,Bob\n"
          "s1,new@example.com,unsubscribed,New\n")
    write(f"{s}invalid_email_{T}.csv", f"{HEADER}\ns1,not-an-email,active,A\ns2,b@example,active,B\n"
          "s3,c d@example.com,active,C\ns4,ok@example.com,active,D\ns5,,active,E\n")
    write(f"{s}huge_cell_{T}.csv", f"{HEADER}\ns1,a@example.com,active,{'x' * 100_000}\n"
          "s2,b@example.com,active,Bob\n")
    write(f"{s}corrupt_{T}.csv.gz", gzip.compress(f"{HEADER}\n".encode() + b"s1,a@example.com,active,Ann\n" * 200)[:60])
    write(f"{s}not_gzip_{T}.csv.gz", f"{HEADER}\ns1,a@example.com,active,Ann\n")
    write(f"{s}broken_line_{T}.jsonl",
          '{"subscriber_id": "s1", "email": "a@example.com", "status": "active"}\n'
          '{"subscriber_id": "s2", "email": \n'
          '{"subscriber_id": "s3", "email": "c@example.com", "status": "active"}\n')
    pq.write_table(pa.table({"subscriber_id": ["s1"], "email": ["a@example.com"], "status": ["active"],
                             "age": ["34"]}), HERE / f"{s}wrong_parquet_type_{T}.parquet")
    write(f"{s}not_parquet_{T}.parquet", f"{HEADER}\ns1,a@example.com,active,Ann\n")
    write(f"{s}subscribers.csv", f"{HEADER}\ns1,a@example.com,active,Ann\n")
    write(f"{s}subscribers_20241340T250000Z.csv", f"{HEADER}\ns1,a@example.com,active,Ann\n")
    write(f"{s}subscribers_2024-01-05.csv", f"{HEADER}\ns1,a@example.com,active,Ann\n")
    write(f"{s}ragged_row_{T}.csv", f"{HEADER}\ns1,a@example.com,active,Ann\ns2,b@example.com\n"
          "s3,c@example.com,active,Smith, Cy\ns4,d@example.com,active,Dee\n")
    write(f"{s}offsets_{T}.csv", "subscriber_id,email,status,created_at\n"
          "s1,a@example.com,active,2024-01-05T10:00:00+02:00\n"
          "s2,b@example.com,active,2024-01-05 10:00:00-0500\n"
          "s3,c@example.com,active,2024-01-05T10:00:00Z\n"
          "s4,d@example.com,active,2024-01-05T10:00:00\n"
          "s5,e@example.com,active,2024-01-05T10:00:00.250+01:00\n"
          "s6,f@example.com,active,2024-01-05\n"
          "s7,g@example.com,active,2024-01-01T00:30:00+05:30\n")
    write(f"{s}tags_spaces_{T}.csv", "subscriber_id,email,status,tags\n"
          's1,a@example.com,active," vip | webinar-attendee || "\ns2,b@example.com,active,|\n'
          "s3,c@example.com,active,\ns4,d@example.com,active,Solo\n")
    write(f"{s}postal_leading_zeros_{T}.csv", "subscriber_id,email,status,postal_code\n"
          "s1,a@example.com,active,02134\ns2,b@example.com,active,00501\ns3,c@example.com,active,1e5\n")
    write(f"{s}booleans_mixed_case_{T}.csv", "subscriber_id,email,status,vip\n"
          "s1,a@example.com,active,TRUE\ns2,b@example.com,active,False\ns3,c@example.com,active,tRuE\n"
          "s4,d@example.com,active,yes\n")
    write(f"{s}extra_column_{T}.csv", f"{HEADER},favourite_colour\ns1,a@example.com,active,Ann, teal \n"
          "s2,b@example.com,active,Bob,\n")
    write(f"{s}missing_optional_{T}.csv", "subscriber_id,email,status\ns1,a@example.com,active\n")
    write(f"{s}missing_required_column_{T}.csv", "subscriber_id,status,first_name\ns1,active,Ann\n")
    write(f"{s}duplicate_header_{T}.csv", "subscriber_id,email,status,Email\ns1,a@example.com,active,b@example.com\n")
    write(f"{s}unnamed_column_{T}.csv", "subscriber_id,email,status,\ns1,a@example.com,active,x\n")
    write(f"{s}bad_date_{T}.csv", "subscriber_id,email,status,birthday\n"
          "s1,a@example.com,active,1990-05-01\ns2,b@example.com,active,2023-02-29\ns3,c@example.com,active,05/01/1990\n")
    write(f"{s}status_case_{T}.csv", f"{HEADER}\ns1,a@example.com,ACTIVE,Ann\ns2,b@example.com, Unsubscribed ,Bob\n")
    write(f"{s}blank_strings_{T}.csv", "subscriber_id,email,status,first_name,city\n"
          's1, a@example.com ,active,   ,""\n')
    write(f"{s}multiline_value_{T}.csv", f'{HEADER}\ns1,a@example.com,active,"Ann\nMarie"\n'
          's2,b@example.com,active,"Bob ""the builder"""\ns3,c@example.com,nope,Cy\n')
    write(f"{s}crlf_{T}.csv", f"{HEADER}\r\ns1,a@example.com,active,Ann\r\ns2,b@example.com,active,Bob\r\n")
    write(f"{s}blank_lines_{T}.csv", f"{HEADER}\ns1,a@example.com,active,Ann\n\n\ns2,b@example.com,wrong,Bob\n")
    write(f"{s}header_case_{T}.csv", " Subscriber_ID ,EMAIL,Status\ns1,a@example.com,active\n")
    write(f"{s}no_final_newline_{T}.csv", f"{HEADER}\ns1,a@example.com,active,Ann")
    write(f"{s}events_in_wrong_folder_{T}.csv", "event_id,subscriber_id,event,occurred_at\ne1,s1,open,2024-01-01\n")
    write(f"{s}json_wrong_kind_{T}.jsonl",
          '{"subscriber_id": "s1", "email": "a@example.com", "status": "active", "postal_code": "02134", '
          '"tags": ["vip", " b "], "age": 41, "vip": true}\n'
          '{"subscriber_id": "s2", "email": "b@example.com", "status": "active", "postal_code": 2134}\n'
          '{"subscriber_id": "s3", "email": "c@example.com", "status": "active", "age": "41"}\n'
          '{"subscriber_id": "s4", "email": "d@example.com", "status": "active", "vip": "true"}\n')
    # Integers too big for a float, and longer than Python parses by default (4,300 digits).
    write(f"{s}json_huge_number_{T}.jsonl",
          '{"subscriber_id": "s1", "email": "a@example.com", "status": "active", "age": 41}\n'
          '{"subscriber_id": "s2", "email": "b@example.com", "status": "active", "age": 1' + "0" * 400 + '}\n'
          '{"subscriber_id": "s3", "email": "c@example.com", "status": "active", "age": 1' + "0" * 5000 + '}\n')
    write(f"{s}json_not_object_{T}.jsonl",
          '{"subscriber_id": "s1", "email": "a@example.com", "status": "active"}\n\n[1, 2]\n"s3"\n'
          '{"Subscriber_Id": "s4", "email": "d@example.com", "status": "Bounced", "shoe_size": 42}\n')
    write(f"{s}json_blank_{T}.jsonl", "\n  \n\n")
    write(f"{s}json_not_utf8_{T}.jsonl", b'{"subscriber_id": "s1", "email": "a@example.com", "status": "active"}\n'
          b'{"subscriber_id": "s2", "email": "b@example.com", "status": "active", "first_name": "Ren\xe9e"}\n')
    write(f"{s}header_not_utf8_{T}.csv", b"subscriber_id,email,status,pr\xe9nom\ns1,a@example.com,active,Ann\n")
    write(f"{s}reserved_column_{T}.csv", f"{HEADER},_lake_source_row\ns1,a@example.com,active,Ann,1\n")
    write(f"{s}json_missing_key_{T}.jsonl",
          '{"subscriber_id": "s1", "email": "a@example.com"}\n{"subscriber_id": "s2", "email": "b@example.com"}\n')
    # 10:00 in Paris (UTC+1 in January) is 09:00 UTC.
    paris = pa.array([datetime(2024, 1, 5, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))],
                     pa.timestamp("ms", tz="Europe/Paris"))
    pq.write_table(pa.table({"subscriber_id": ["s1"], "email": ["a@example.com"], "status": ["Active"],
                             "created_at": paris, "age": pa.array([34], pa.int32()),
                             "tags": pa.array([["vip", " "]], pa.list_(pa.string()))}),
                   HERE / f"{s}parquet_zoned_{T}.parquet")


def events() -> None:
    e = "events/"
    head = "event_id,subscriber_id,event,occurred_at,amount\n"
    write(f"{e}missing_occurred_at_{T}.csv", head + "e1,s1,purchase,2024-01-04T10:00:00Z,10\ne2,s1,purchase,,10\n")
    write(f"{e}bad_amount_{T}.csv", head + 'e1,s1,purchase,2024-01-04T10:00:00Z,"12,50"\n'
          "e2,s1,purchase,2024-01-04T10:00:00Z,1e2\ne3,s1,purchase,2024-01-04T10:00:00Z,abc\n")
    write(f"{e}seen_before_{T}.csv", head + "e1,s1,purchase,2024-01-04T10:00:00Z,99\n"
          "e3,s2,open,2024-01-04T11:00:00Z,\n")
    write(f"{e}duplicate_in_file_{T}.csv", head + "e1,s1,purchase,2024-01-04T10:00:00Z,1\n"
          "e1,s1,purchase,2024-01-04T10:00:00Z,2\ne2,s1,open,2024-01-04T10:00:00Z,\n")
    write(f"{e}header_only_{T}.csv", head)
    write(f"{e}subscribers_in_wrong_folder_{T}.csv", f"{HEADER}\ns1,a@example.com,active,Ann\n")
    write("support/events/earlier_export_20240104T000000Z.csv", head + "e1,s1,purchase,2024-01-03T10:00:00Z,5\n")
    # NaN and infinity are numbers to Parquet and to Python's JSON reader, not to a filter.
    at = pa.array([datetime(2024, 1, 4, 10)] * 4, pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"event_id": ["e1", "e2", "e3", "e4"], "subscriber_id": ["s1"] * 4,
                             "event": ["purchase"] * 4, "occurred_at": at,
                             "amount": pa.array([1.5, float("nan"), float("inf"), None], pa.float64())}),
                   HERE / f"{e}parquet_not_finite_{T}.parquet")
    write(f"{e}json_nan_{T}.jsonl", '{"event_id": "e1", "subscriber_id": "s1", "event": "purchase", '
          '"occurred_at": "2024-01-04T10:00:00Z", "amount": NaN}\n'
          '{"event_id": "e2", "subscriber_id": "s1", "event": "purchase", '
          '"occurred_at": "2024-01-04T10:00:00Z", "amount": -Infinity}\n'
          '{"event_id": "e3", "subscriber_id": "s1", "event": "purchase", '
          '"occurred_at": "2024-01-04T10:00:00Z", "amount": 2}\n')


if __name__ == "__main__":
    subscribers()
    events()
