"""Metrics from batches: per-namespace series are bounded, counters mirror cumulative stats."""

from pathlib import Path

from xtcp_uring import records
from xtcp_uring.logs import JsonFormatter
from xtcp_uring.metrics import OTHER, Metrics
from xtcp_uring.poller import PollerStats
from xtcp_uring.pcap import response_payloads

CAPTURE = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "xtcp2" / "6_8_12" / "6_8_12_tcp_10_sockets.pcap"


def batch_of(names: list[str]) -> records.Batch:
    buffers = [bytes(p) for p in response_payloads(CAPTURE)]
    dumps = []
    for name in names:
        d = records.decode_buffers(buffers, strict=False, netns=name)
        d.family, d.dump_ns = 2, 1_000_000
        dumps.append(d)
    return records.Batch(dumps, poll_id=1, duration_ns=5_000_000)


def samples(m: Metrics, name: str) -> dict[tuple, float]:
    out = {}
    for family in m.registry.collect():
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_namespace_series_are_bounded_and_the_rest_summed_as_other():
    m = Metrics(max_namespace_series=2)
    batch = batch_of(["a", "b", "c", "d"])
    m.observe_poll(batch, PollerStats(polls=1, backend="io_uring"))
    per_ns = samples(m, "xtcp_sockets")
    assert {dict(k)["netns"] for k in per_ns} == {"a", "b", OTHER}
    one = batch.dumps[0].count
    assert per_ns[(("netns", OTHER),)] == 2 * one
    assert sum(per_ns.values()) == len(batch)


def test_counters_follow_cumulative_stats_without_double_counting():
    m = Metrics()
    stats = PollerStats(polls=1, skipped_ticks=0, backend="sockets", fallback=True)
    m.observe_poll(batch_of(["a"]), stats)
    stats.polls, stats.skipped_ticks = 3, 2
    m.observe_poll(batch_of(["a"]), stats)
    assert samples(m, "xtcp_polls_total")[()] == 3
    assert samples(m, "xtcp_polls_skipped_total")[()] == 2
    assert samples(m, "xtcp_backend_info") == {(("backend", "sockets"), ("fallback", "true")): 1}


def test_netlink_rejections_are_exported_by_reason_from_the_first_scrape():
    m = Metrics()
    stats = PollerStats(polls=1)
    m.observe_poll(batch_of(["a"]), stats)
    assert samples(m, "xtcp_netlink_rejected_total") == {(("reason", r),): 0 for r in ("sender", "seq", "malformed")}
    stats.netlink_rejected.update(sender=2, seq=40)
    m.observe_poll(batch_of(["a"]), stats)
    stats.netlink_rejected.update(seq=41, malformed=1)
    m.observe_poll(batch_of(["a"]), stats)
    assert samples(m, "xtcp_netlink_rejected_total") == {
        (("reason", "sender"),): 2, (("reason", "seq"),): 41, (("reason", "malformed"),): 1}


def test_json_log_lines_are_one_object_each():
    import json
    import logging

    rec = logging.LogRecord("xtcp_uring.daemon", logging.INFO, __file__, 1, "poll %d: %d sockets", (7, 42), None)
    obj = json.loads(JsonFormatter().format(rec))
    assert obj["msg"] == "poll 7: 42 sockets" and obj["level"] == "info" and obj["logger"] == "xtcp_uring.daemon"
