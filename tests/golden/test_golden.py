"""Golden tests: the C decoder against `ss -tia` text printed from the same kernel dump.

Every socket of every capture is matched with its ss entry by cookie (`sk:`), then every value
ss printed is checked under ss's own formatting rules (tests/golden/ss_text.py names each
rule and where in ss it comes from). Fields ss leaves out are checked against what leaving
them out means (zero, or a sentinel such as reordering 3).
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from golden import oracle
from golden import cases as golden_cases
from golden.ss_text import compare_socket, parse_ss_file
from xtcp_uring import native, records
from xtcp_uring.wire.pcap import PcapError, response_payloads

CASES = golden_cases.golden_cases()
COMPARABLE = [c for c in CASES if c.problem is None]
BROKEN = [c for c in CASES if c.problem is not None]
_REPORT: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # kernel -> cases, sockets, values


def dumps_by_run(case) -> list[list[records.Dump]]:
    """Decode the capture packet by packet; an ss run is two dumps (v4 then v6), each ending in DONE."""
    layout = native.tcp_info_layout(case.release)
    runs, current, dones = [], [], 0
    for payload in response_payloads(case.pcap):
        dump = records.decode_buffers([bytes(payload)], layout=layout, strict=True)
        current.append(dump)
        if dump.stats.done:
            dones += 1
            if dones % 2 == 0:
                runs.append(current)
                current = []
    if current:
        runs.append(current)
    return runs


def record_dict(row, names) -> dict:
    rec = {}
    for name in names:
        value = row[name]
        rec[name] = value.tobytes() if hasattr(value, "tobytes") and value.ndim else int(value)
    for name in ("inet_diag_msg_socket_source", "inet_diag_msg_socket_destination"):
        rec[name] = rec[name][: rec[name + "_len"]]
    rec["congestion_algorithm_string"] = rec["congestion_algorithm_string"].split(b"\0")[0].decode()
    # A tcp_info field past the payload was not reported by that kernel: leave it out.
    for off, fmt, name in oracle.TCP_INFO_FIELDS:
        if off + {"B": 1, "H": 2, "I": 4, "Q": 8}[fmt] > rec["tcp_info_len"]:
            rec.pop(name, None)
    return rec


@pytest.mark.parametrize("case", COMPARABLE, ids=[c.id for c in COMPARABLE])
def test_decoded_values_match_ss(case, request):
    ss_sockets = parse_ss_file(case.ss_text)
    run = dumps_by_run(case)[case.ss_run]
    by_cookie = {}
    for dump in run:
        arr = dump.array()
        for row in arr:
            by_cookie[int(row["inet_diag_msg_socket_cookie"])] = record_dict(row, arr.dtype.names)
    assert len(by_cookie) == len(ss_sockets), "the ss run and the dump list the same sockets"
    problems, values = [], 0
    for sock in ss_sockets:
        rec = by_cookie.get(sock["cookie"])
        assert rec is not None, f"ss socket sk:{sock['cookie']:x} missing from the decoded dump"
        problems += [f"sk:{sock['cookie']:x} {p}" for p in compare_socket(sock, rec)]
        values += len(sock["printed"])
    assert problems == []
    report = _REPORT[case.kernel]
    report[0] += 1
    report[1] += len(ss_sockets)
    report[2] += values
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"golden {case.id}: {len(ss_sockets)} sockets, {values} ss values, all match")


def test_every_kernel_of_the_testdata_is_compared():
    kernels = {c.kernel for c in CASES}
    assert kernels >= {"4_19_319", "5_4_281", "5_15_164", "6_1_103", "6_6_44", "6_8_12"}
    assert kernels == {c.kernel for c in COMPARABLE}


@pytest.mark.parametrize("case", BROKEN, ids=[c.id for c in BROKEN])
def test_pairs_that_cannot_be_compared_are_really_broken(case):
    """The two pairs the table excludes: say why in a way that fails if the data is fixed."""
    try:
        runs = dumps_by_run(case)
    except PcapError:
        assert case.pcap.read_bytes().count(0) == case.pcap.stat().st_size  # all zero bytes
        return
    ss_cookies = {s["cookie"] for s in parse_ss_file(case.ss_text)}
    for run in runs:
        cookies = {int(c) for d in run for c in d.array()["inet_diag_msg_socket_cookie"]}
        assert len(cookies & ss_cookies) < len(ss_cookies) // 2
