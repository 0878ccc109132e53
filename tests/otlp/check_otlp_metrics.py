#!/usr/bin/env python3
"""Checks an OTLP/HTTP JSON metrics export body with the real protobuf JSON parser.

Usage: check_otlp_metrics.py BODY.json

The whole document is parsed strictly (unknown fields are errors) into
ExportMetricsServiceRequest; then every data point is checked to carry a value, every histogram's
bucket counts to sum to its count with one count more than bounds.

Needs: pip install opentelemetry-proto==1.45.2
"""
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest


def fail(msg):
    print(f"check_otlp_metrics: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    req = ExportMetricsServiceRequest()
    try:
        json_format.Parse(text, req, ignore_unknown_fields=False)
    except json_format.ParseError as e:
        fail(f"not an ExportMetricsServiceRequest: {e}")
    metrics = [m for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    if not metrics:
        fail("no metrics")
    for m in metrics:
        kind = m.WhichOneof("data")
        if kind in ("sum", "gauge"):
            for p in getattr(m, kind).data_points:
                if p.WhichOneof("value") is None:
                    fail(f"{m.name}: a data point without a value")
        elif kind == "histogram":
            for p in m.histogram.data_points:
                if len(p.bucket_counts) != len(p.explicit_bounds) + 1:
                    fail(f"{m.name}: {len(p.bucket_counts)} counts for {len(p.explicit_bounds)} bounds")
                if sum(p.bucket_counts) != p.count:
                    fail(f"{m.name}: bucket counts sum to {sum(p.bucket_counts)}, count is {p.count}")
        else:
            fail(f"{m.name}: unexpected data {kind}")
    print(f"check_otlp_metrics: ok, {len(metrics)} metrics")


if __name__ == "__main__":
    main()
