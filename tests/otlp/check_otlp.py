#!/usr/bin/env python3
"""Checks an OTLP/HTTP JSON trace export body with the real protobuf JSON parser.

Usage: check_otlp.py BODY.json EXPECT.json

BODY is what our exporter POSTed. EXPECT lists what the Rust test put into it:
  {"service_name": "...", "spans": [{"name", "trace_id", "span_id", "parent_span_id"?,
   "kind", "status_code", "attributes": {key: value}}]}

OTLP JSON departs from the protobuf JSON mapping in one place: trace and span ids are hex, not
base64. So ids are first checked to be lowercase hex of the right width, then rewritten to
base64 (what an OTLP receiver's decoder does), and the whole document is parsed strictly
(unknown fields are errors) into ExportTraceServiceRequest.

Needs: pip install opentelemetry-proto==1.45.2
"""
import base64
import json
import re
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

HEX = {"traceId": re.compile(r"^[0-9a-f]{32}$"), "spanId": re.compile(r"^[0-9a-f]{16}$"),
       "parentSpanId": re.compile(r"^[0-9a-f]{16}$")}


def fail(msg):
    print(f"check_otlp: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def hex_ids_to_base64(doc):
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for field, pattern in HEX.items():
                    if field in span:
                        if not pattern.match(span[field]):
                            fail(f"{field} {span[field]!r} is not lowercase hex of the right width")
                        span[field] = base64.b64encode(bytes.fromhex(span[field])).decode()


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        fail("attribute with no value")
    return getattr(v, kind)


def main():
    body_path, expect_path = sys.argv[1], sys.argv[2]
    with open(body_path, "rb") as f:
        raw = f.read()
    with open(expect_path) as f:
        expect = json.load(f)
    doc = json.loads(raw)
    hex_ids_to_base64(doc)
    req = ExportTraceServiceRequest()
    try:
        json_format.Parse(json.dumps(doc), req, ignore_unknown_fields=False)
    except json_format.ParseError as e:
        fail(f"protobuf JSON parser rejected the body: {e}")

    if len(req.resource_spans) != 1:
        fail(f"expected 1 resourceSpans, got {len(req.resource_spans)}")
    rs = req.resource_spans[0]
    res = {kv.key: any_value(kv.value) for kv in rs.resource.attributes}
    if res.get("service.name") != expect["service_name"]:
        fail(f"service.name {res.get('service.name')!r}")
    for key in ("service.version", "telemetry.sdk.name", "telemetry.sdk.language", "telemetry.sdk.version"):
        if not res.get(key):
            fail(f"resource attribute {key} missing")

    spans = {s.name: s for ss in rs.scope_spans for s in ss.spans}
    checked = 0
    for want in expect["spans"]:
        s = spans.get(want["name"])
        if s is None:
            fail(f"span {want['name']!r} missing; have {sorted(spans)}")
        if len(s.trace_id) != 16 or s.trace_id.hex() != want["trace_id"]:
            fail(f"{want['name']}: trace_id {s.trace_id.hex()} != {want['trace_id']}")
        if len(s.span_id) != 8 or s.span_id.hex() != want["span_id"]:
            fail(f"{want['name']}: span_id {s.span_id.hex()} != {want['span_id']}")
        if s.parent_span_id.hex() != want.get("parent_span_id", ""):
            fail(f"{want['name']}: parent_span_id {s.parent_span_id.hex()!r}")
        if Span.SpanKind.Name(s.kind) != want["kind"]:
            fail(f"{want['name']}: kind {Span.SpanKind.Name(s.kind)}")
        if Status.StatusCode.Name(s.status.code) != want["status_code"]:
            fail(f"{want['name']}: status {Status.StatusCode.Name(s.status.code)}")
        if not (0 < s.start_time_unix_nano <= s.end_time_unix_nano):
            fail(f"{want['name']}: times {s.start_time_unix_nano}..{s.end_time_unix_nano}")
        if s.flags & 0x100 == 0:
            fail(f"{want['name']}: flags {s.flags:#x} lack HAS_IS_REMOTE")
        attrs = {kv.key: any_value(kv.value) for kv in s.attributes}
        for key, value in want.get("attributes", {}).items():
            if attrs.get(key) != value:
                fail(f"{want['name']}: attribute {key} = {attrs.get(key)!r}, want {value!r}")
        checked += 1
    print(f"check_otlp: {checked} spans checked")


if __name__ == "__main__":
    main()
