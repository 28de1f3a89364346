"""Tests for the ss-text oracle (tests/golden/ss_text.py) and the golden case table."""

from __future__ import annotations

import copy
import functools
import re
import socket

import pytest

from golden import cases
from golden.ss_text import (
    KEYS,
    SsTextError,
    compare_socket,
    expected,
    expected_absent,
    format_bw,
    format_ss_addr,
    parse_ss_file,
    parse_ss_text,
    print_ms_timer,
)

ROOT = cases.testdata_root()
pytestmark = pytest.mark.skipif(not ROOT.is_dir(), reason=f"no test data at {ROOT}")

SS_FILES = [pytest.param(p, id=i) for i, p, usable in cases.ss_text_files() if usable]
STATE_LINE = re.compile(r"^[A-Z][A-Z-]+ +\d+ +\d+ ")


@functools.lru_cache(maxsize=None)
def _parsed(path_tail: str) -> tuple:
    return tuple(parse_ss_file(ROOT / path_tail))


def _sock(path_tail: str, **match):
    for s in _parsed(path_tail):
        if all(s.get(k) == v for k, v in match.items()):
            return copy.deepcopy(s)
    raise LookupError(f"{path_tail}: no socket with {match}")


# ---------------------------------------------------------------- every real file


@pytest.mark.parametrize("path", SS_FILES)
def test_every_ss_file_parses_one_socket_per_state_line(path):
    text = path.read_text()
    socks = parse_ss_text(text)
    n_state_lines = sum(1 for line in text.splitlines()[1:] if STATE_LINE.match(line))
    assert len(socks) == n_state_lines > 0
    for s in socks:
        assert s["unknown"] == [], (s["line_no"], s["unknown"])
        assert s["state"] in ("ESTAB", "LISTEN", "TIME-WAIT")
        assert isinstance(s["inode"], int) and isinstance(s["cookie"], int)
        if s["state"] != "TIME-WAIT":
            assert s["shutdown"] == 0  # "<->"
            assert "skmem_rb" in s and "cwnd" in s and s["cong"]


def test_all_nul_ss_file_is_an_error():
    bad = [p for _, p, usable in cases.ss_text_files() if not usable]
    assert bad, "expected the known all-NUL 6_1_103 file"
    for path in bad:
        with pytest.raises(SsTextError, match=str(path)):
            parse_ss_file(path)


def test_text_without_header_is_an_error():
    with pytest.raises(SsTextError, match="line 1"):
        parse_ss_text("ESTAB 0 0 1.2.3.4:1 5.6.7.8:2\n")


# ---------------------------------------------------------------- spot checks


def test_listen_sshd_6_6_44():
    s = _sock("6_6_44/ss_tcp_info_a_10", cookie=0x1001)
    assert (s["state"], s["recv_q"], s["send_q"]) == ("LISTEN", 0, 128)
    assert (s["local_addr"], s["local_port"], s["peer_addr"], s["peer_port"]) == ("0.0.0.0", 22, "0.0.0.0", 0)
    assert s["inode"] == 3636 and "uid" not in s  # uid 0 is not printed
    assert s["cgroup_path"] == "/system.slice/sshd.service"
    assert (s["tos"], s["class_id"]) == (0, 0) and "tclass" not in s
    assert (s["skmem_r"], s["skmem_rb"], s["skmem_tb"], s["skmem_d"]) == (0, 1000000, 1000000, 0)
    assert (s["cong"], s["cwnd"]) == ("cubic", 10)
    assert "rtt" not in s and "rto" not in s


def test_estab_client_6_6_44():
    s = _sock("6_6_44/ss_tcp_info_a_10", cookie=0x1021)
    assert (s["local_addr"], s["local_port"], s["peer_port"]) == ("127.0.0.1", 13423, 4002)
    assert s["users"] == [{"name": "tcp_client", "pid": 2385, "fd": 9}]
    assert (s["timer"], s["timer_expires"], s["timer_retrans"]) == ("keepalive", "5.485ms", 0)
    assert s["timer_expires_ms"] == (5485, 5485)
    assert (s["uid"], s["inode"]) == (1000, 11991)
    assert s["opts"] == ["ts", "sack", "ecn", "ecnseen"]
    assert (s["snd_wscale"], s["rcv_wscale"], s["rto"]) == (9, 9, 201)
    assert (s["rtt"], s["rttvar"]) == (0.173, 0.202)
    assert (s["printed"]["rtt"], s["printed"]["rttvar"]) == ("0.173", "0.202")
    assert (s["mss"], s["pmtu"], s["rcvmss"], s["advmss"]) == (32768, 65535, 536, 65483)
    assert (s["bytes_sent"], s["bytes_acked"], s["bytes_received"]) == (50, 51, 50)
    assert s["send_bps"] == 15152832370
    assert s["pacing_rate_bps"] == 30196573072 and s["delivery_rate_bps"] == 6241523808
    assert (s["lastsnd"], s["delivered"], s["app_limited"], s["busy_ms"]) == (1502, 6, True, 2)
    assert (s["minrtt"], s["snd_wnd"], s["rcv_wnd"]) == (0.027, 65536, 65536)


def test_sshd_peer_8_6_12_with_rcv_rtt():
    s = _sock("6_8_12/6_8_12_ss_tcp_info_a_10", local_port=22, state="ESTAB")
    assert (s["peer_addr"], s["tos"], s["timer_expires"]) == ("10.0.2.2", 0x20, "1min46sec")
    assert (s["rtt"], s["rttvar"], s["rcv_rtt"], s["busy_ms"]) == (0.119, 0.028, 9.196, 698)
    assert (s["send_bps"], s["pacing_rate_bps"], s["delivery_rate_bps"]) == (981512605, 1954811712, 233600000)
    assert s["rcv_wnd"] == 3030960 and "app_limited" in s["printed"]


def test_bbr_dctcp_and_unacked():
    b = _sock("6_6_44/ss_tcp_info_a_100_bbr", local_port=14885)
    assert b["cong"] == "bbr"
    assert (b["bbr_bw"], b["bbr_mrtt"], b["bbr_pacing_gain"], b["bbr_cwnd_gain"]) == (13107187496, 0.02, 2.88672, 2.88672)
    d = _sock("6_6_44/ss_tcp_info_a_100_dctcp", local_port=46065)
    assert (d["cong"], d["tos"], d["dctcp_fallback"]) == ("dctcp", 2, False)
    assert (d["dctcp_ce_state"], d["dctcp_alpha"], d["dctcp_ab_ecn"], d["dctcp_ab_tot"]) == (0, 540, 0, 32768)
    u = _sock("6_6_44/ss_tcp_info_a_4", cookie=0x96EE)
    assert (u["timer"], u["send_q"], u["unacked"], u["rcv_rtt"]) == ("on", 36, 1, 54576.2)
    assert (u["skmem_f"], u["skmem_w"], u["class_id"], u["tos"]) == (3164, 932, 2, 0x48)


def test_timer_forms():
    t = _sock("4_19_319/4_19_319_ss_tcp_info_a_1000", cookie=0x1AB)
    assert (t["timer_expires"], t["timer_expires_ms"]) == ("71582min", (71582 * 60000, 71582 * 60000 + 59999))
    tw = _sock("5_4_281/5_4_281_ss_tcp_info_a_100", state="TIME-WAIT")
    assert tw["timer"] == "timewait" and tw["inode"] == 0 and "skmem_r" not in tw and "shutdown" not in tw
    e = _sock("6_6_44/ss_tcp_info_a_100_dctcp", cookie=0x94F2)
    assert (e["timer"], e["timer_expires"], e["timer_expires_ms"]) == ("keepalive", "", (0, 0))


# ---------------------------------------------------------------- addresses


def test_ipv6_bracket_addresses_from_files():
    s = _sock("6_6_44/ss_tcp_info_a_4", cookie=0x96F3)
    assert (s["local_addr"], s["local_port"], s["peer_addr"], s["peer_port"]) == (
        "::ffff:127.0.0.1", 4001, "::ffff:127.0.0.1", 48965)
    assert (s["tos"], s["tclass"]) == (2, 2)
    v6 = _sock("6_6_44/ss_tcp_info_a_ssh_listen", cookie=0x1002)
    assert (v6["local_addr"], v6["peer_addr"], v6["peer_port"], v6["v6only"]) == ("::", "::", 0, 1)
    star = _sock("4_19_319/4_19_319_ss_tcp_info_a_100", local_port=4093, state="LISTEN")
    assert (star["local_addr"], star["peer_addr"], star["v6only"]) == ("*", "*", 0)


HEADER = "State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"


@pytest.mark.parametrize(
    "local, addr, ifname, port",
    [
        ("[::1]:4001", "::1", None, 4001),
        ("[fe80::1]%eth0:22", "fe80::1", "eth0", 22),
        ("127.0.0.1%lo:22", "127.0.0.1", "lo", 22),
        ("*:22", "*", None, 22),
        ("0.0.0.0:ssh", "0.0.0.0", None, "ssh"),
    ],
)
def test_synthetic_address_forms(local, addr, ifname, port):
    s = parse_ss_text(HEADER + f"LISTEN 0 128 {local} *:* ino:1 sk:2 <->\n\t cubic cwnd:10\n")[0]
    assert (s["local_addr"], s.get("local_if"), s["local_port"]) == (addr, ifname, port)
    assert (s["peer_addr"], s["peer_port"]) == ("*", 0)


def test_format_ss_addr_matches_printed_forms():
    mapped = socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1")
    assert format_ss_addr(socket.AF_INET6, mapped) == "::ffff:127.0.0.1"
    assert format_ss_addr(socket.AF_INET6, bytes(16)) == "*"
    assert format_ss_addr(socket.AF_INET6, bytes(16), v6only=True) == "::"
    assert format_ss_addr(socket.AF_INET, bytes([10, 0, 2, 15])) == "10.0.2.15"


def test_wrapped_first_line_joins():
    one = HEADER + "ESTAB 0 0 10.0.0.1:5 10.0.0.2:6 uid:7 ino:8 sk:9 <-> tos:0x10\n\t cubic rto:204 rtt:1.5/0.75\n"
    wrapped = one.replace(" uid:7", "\nuid:7")
    a, b = parse_ss_text(one)[0], parse_ss_text(wrapped)[0]
    a.pop("line_no"), b.pop("line_no")
    assert a == b and a["uid"] == 7 and a["tos"] == 16


def test_netid_column_and_other_forms():
    text = (
        "Netid State Recv-Q Send-Q Local Address:Port Peer Address:Port\n"
        'tcp ESTAB 0 0 1.1.1.1:1 2.2.2.2:2 users:(("my prog",pid=1,fd=3)) ino:5 sk:a fwmark:0x2a <--\n'
        "\t mem:(r1,w2,f3,t4) fastopen reno rto:1000 backoff:2 ssthresh:7 bytes_retrans:9 "
        "pacing_rate 982Mbps/1.2Gbps rwnd_limited:3ms(37.5%) busy:8ms retrans:1/4 lost:2 sacked:3 "
        "dsack_dups:1 reordering:5 reord_seen:6 notsent:11 rehash:2 dctcp:fallback_mode\n"
    )
    s = parse_ss_text(text)[0]
    assert s["unknown"] == []
    assert (s["netid"], s["users"][0]["name"], s["fwmark"], s["shutdown"]) == ("tcp", "my prog", 42, 2)
    assert (s["mem_r"], s["mem_t"], s["opts"], s["cong"]) == (1, 4, ["fastopen"], "reno")
    assert (s["pacing_rate_bps"], s["pacing_rate_max_bps"]) == (982e6, 1.2e9)
    assert (s["rwnd_limited_ms"], s["rwnd_limited_pct"], s["retrans"], s["retrans_total"]) == (3, 37.5, 1, 4)
    assert (s["reordering"], s["rehash"], s["dctcp_fallback"]) == (5, 2, True)


# ---------------------------------------------------------------- rounding rules


@pytest.mark.parametrize(
    "field, printed, good, bad",
    [
        ("tcp_info_rtt", "0.119", [119], [118, 120, 121, 1190]),
        ("tcp_info_rtt_var", "0.028", [28], [27, 29]),
        ("tcp_info_rto", "201", [201000], [201001, 200999, 201]),
        ("tcp_info_ato", "40", [40000], [40001]),
        ("tcp_info_min_rtt", "0.02", [20], [21, 19, 200]),
        # %g keeps 6 significant digits, not 3 decimals:
        ("tcp_info_rcv_rtt", "54576.2", [54576200, 54576249, 54576250], [54576251, 54576149]),
        ("tcp_info_rcv_rtt", "12345.7", [12345678], [12345600]),
        ("tcp_info_pacing_rate", "1954811712", [244351464], [244351465, 244351463]),
        ("tcp_info_delivery_rate", "233600000", [29200000], [29200001]),
        ("tcp_info_delivery_rate", "233M", [29150000, 29100000], [29000000, 29200000]),  # without -n: %.3g
        ("tcp_info_busy_time", "698", [698000, 698999], [697999, 699000]),
        ("tcp_info_rwnd_limited", "3", [3000, 3999], [4000]),
        ("bbr_info_pacing_gain", "2.88672", [739], [738, 740]),
        ("bbr_info_cwnd_gain", "2", [512], [511, 513]),
        ("bbr_info_min_rtt", "0.02", [20], [21]),
        ("bbr_bw", "13107187496", [1638398437], [1638398436]),
        ("type_of_service", "0x48", [72], [0x49]),
        ("type_of_service", "0", [0], [1]),
        ("inet_diag_msg_socket_cookie", "96ee", [0x96EE], [0x96EF]),
        ("inet_diag_msg_expires", "5.485ms", [5485], [5484, 5486]),
        ("inet_diag_msg_expires", "12sec", [12000, 12999], [13000, 11999]),
        ("inet_diag_msg_expires", "71582min", [0xFFFFFFFF], [71581 * 60000]),
        ("tcp_info_snd_mss", "32768", [32768], [32767]),
        ("sk_mem_info_rcv_buf", "1000000", [1000000], [999999]),
    ],
)
def test_rule_accepts_right_value_and_rejects_neighbours(field, printed, good, bad):
    exp = expected(field, printed)
    for v in good:
        assert exp(v), (field, printed, v, exp.rule)
    for v in bad:
        assert not exp(v), (field, printed, v, exp.rule)


def test_rule_render_gives_ss_text():
    assert expected("tcp_info_rtt", "0.119").render(119) == "0.119"
    assert expected("tcp_info_rto", "201").render(201000) == "201"
    assert print_ms_timer(611) == "611ms" and print_ms_timer(7999) == "7.999ms"
    assert print_ms_timer(113_000) == "1min53sec" and print_ms_timer(0) == ""
    assert format_bw(981512605, numeric=False) == "982M"


def test_bbr_bw_from_hi_lo_pair():
    bw = 13107187496 // 8
    assert expected("bbr_bw", "13107187496")({"bbr_info_bw_hi": bw >> 32, "bbr_info_bw_lo": bw & 0xFFFFFFFF})
    big = (1 << 32) + 5
    printed = "%.0f" % (big * 8.0)
    assert expected("bbr_bw", printed)({"bbr_info_bw_hi": 1, "bbr_info_bw_lo": 5})
    assert not expected("bbr_bw", printed)({"bbr_info_bw_hi": 0, "bbr_info_bw_lo": 5})


def test_derived_send_rate_and_limited_percent():
    rec = {"tcp_info_snd_cwnd": 10, "tcp_info_snd_mss": 1460, "tcp_info_rtt": 119}
    assert expected("send_bps", "981512605")(rec)
    assert not expected("send_bps", "981512605")({**rec, "tcp_info_rtt": 120})
    # vegas: its own rtt replaces tcpi_rtt when enabled and valid
    vegas = {**rec, "tcp_info_rtt": 500, "vegas_info_enabled": 1, "vegas_info_rtt": 119}
    assert expected("send_bps", "981512605")(vegas)
    assert not expected("send_bps", "981512605")({**vegas, "vegas_info_enabled": 0})
    assert expected("rwnd_limited_pct", "37.5")((3000, 8000))
    assert not expected("rwnd_limited_pct", "37.5")((3010, 8000))


@pytest.mark.parametrize(
    "field, zero_like, nonzero",
    [
        ("tcp_info_unacked", [0], [1]),
        ("tcp_info_lost", [0], [1]),
        ("tcp_info_sacked", [0], [2]),
        ("tcp_info_bytes_retrans", [0], [1]),
        ("tcp_info_dsack_dups", [0], [1]),
        ("tcp_info_not_sent_bytes", [0], [7]),
        ("tcp_info_rehash", [0], [1]),
        ("tcp_info_reordering", [3], [0, 4]),
        ("tcp_info_snd_ssthresh", [0, 0xFFFF, 0x7FFFFFFF], [7, 0xFFFE]),
        ("tcp_info_rto", [0, 3000000], [201000]),
        ("tcp_info_min_rtt", [0, 0xFFFFFFFF], [20]),
        ("tcp_info_pacing_rate", [0, 2**64 - 1], [1]),
        ("tcp_info_retrans", [0], [1]),
        ("tcp_info_total_retrans", [0], [1]),
        ("inet_diag_msg_uid", [0], [1000]),
        ("tcp_info_busy_time", [0], [1]),
    ],
)
def test_absence_rules(field, zero_like, nonzero):
    exp = expected_absent(field)
    assert all(exp(v) for v in zero_like)
    assert not any(exp(v) for v in nonzero)


def test_absence_special_cases():
    assert expected_absent("tcp_info_sacked", {"state": "LISTEN"})(128)  # max backlog, hidden
    with pytest.raises(ValueError):
        expected_absent("tcp_info_rtt_var")  # rttvar is printed only together with rtt
    with pytest.raises(ValueError):
        expected("c_group", "/system.slice")  # ss resolved the id via the host's cgroupfs
    with pytest.raises(KeyError):
        expected("tcp_info_total_rto", "1")  # ss does not print it


def test_every_key_names_a_schema_field():
    schema = ROOT.parents[1] / "xtcp2_schema_fields.txt"
    if not schema.is_file():
        pytest.skip(f"no {schema}")
    names = {line.split()[2] for line in schema.read_text().splitlines()
             if line and not line.startswith("#")}
    extra = {"mark", "skv6only"}  # INET_DIAG_MARK / SKV6ONLY: not in xtcp2's schema
    for spec in KEYS.values():
        for f in spec.fields:
            assert f in names or f in extra, (spec.key, f)
        assert spec.source and spec.rule


# ---------------------------------------------------------------- whole-socket compare


def _record_for_client_6_6_44() -> dict:
    """Raw values consistent with the ss text of socket sk:1021 in 6_6_44/ss_tcp_info_a_10."""
    return {
        "inet_diag_msg_family": socket.AF_INET, "inet_diag_msg_state": 1,
        "inet_diag_msg_timer": 2, "inet_diag_msg_expires": 5485, "inet_diag_msg_retrans": 0,
        "inet_diag_msg_socket_source": bytes([127, 0, 0, 1]),
        "inet_diag_msg_socket_destination": bytes([127, 0, 0, 1]),
        "inet_diag_msg_socket_source_port": 13423, "inet_diag_msg_socket_destination_port": 4002,
        "inet_diag_msg_socket_interface": 0, "inet_diag_msg_socket_cookie": 0x1021,
        "inet_diag_msg_rqueue": 0, "inet_diag_msg_wqueue": 0, "inet_diag_msg_uid": 1000,
        "inet_diag_msg_inode": 11991, "shutdown_state": 0, "type_of_service": 0, "class_id": 0,
        "congestion_algorithm_string": "cubic",
        "sk_mem_info_rmem_alloc": 0, "sk_mem_info_rcv_buf": 1000000, "sk_mem_info_wmem_alloc": 0,
        "sk_mem_info_snd_buf": 2626560, "sk_mem_info_fwd_alloc": 0, "sk_mem_info_wmem_queued": 0,
        "sk_mem_info_optmem": 0, "sk_mem_info_backlog": 0, "sk_mem_info_drops": 0,
        "tcp_info_state": 1, "tcp_info_options": 1 | 2 | 4 | 8 | 16, "tcp_info_send_scale": 9,
        "tcp_info_rcv_scale": 9, "tcp_info_rto": 201000, "tcp_info_rtt": 173, "tcp_info_rtt_var": 202,
        "tcp_info_ato": 40000, "tcp_info_snd_mss": 32768, "tcp_info_pmtu": 65535,
        "tcp_info_rcv_mss": 536, "tcp_info_adv_mss": 65483, "tcp_info_snd_cwnd": 10,
        "tcp_info_snd_ssthresh": 0x7FFFFFFF, "tcp_info_reordering": 3,
        "tcp_info_bytes_sent": 50, "tcp_info_bytes_acked": 51, "tcp_info_bytes_received": 50,
        "tcp_info_segs_out": 12, "tcp_info_segs_in": 7, "tcp_info_data_segs_out": 5,
        "tcp_info_data_segs_in": 5, "tcp_info_last_data_sent": 1502, "tcp_info_last_data_recv": 1502,
        "tcp_info_last_ack_recv": 1502, "tcp_info_pacing_rate": 30196573072 // 8,
        "tcp_info_max_pacing_rate": 2**64 - 1, "tcp_info_delivery_rate": 6241523808 // 8,
        "tcp_info_delivered": 6, "tcp_info_delivery_rate_app_limited": 1,
        "tcp_info_busy_time": 2500, "tcp_info_rcv_space": 65535, "tcp_info_rcv_ssthresh": 65535,
        "tcp_info_min_rtt": 27, "tcp_info_snd_wnd": 65536, "tcp_info_rcv_wnd": 65536,
        "tcp_info_unacked": 0, "tcp_info_retrans": 0, "tcp_info_total_retrans": 0,
        "tcp_info_rehash": 0, "tcp_info_not_sent_bytes": 0,
    }


def test_compare_socket_accepts_consistent_record():
    s = _sock("6_6_44/ss_tcp_info_a_10", cookie=0x1021)
    assert compare_socket(s, _record_for_client_6_6_44()) == []


@pytest.mark.parametrize(
    "field, value, key",
    [
        ("tcp_info_rtt", 174, "rtt"),
        ("tcp_info_unacked", 1, "unacked"),  # ss omitted it, so it must be 0
        ("tcp_info_reordering", 4, "reordering"),
        ("tcp_info_options", 1 | 2 | 4 | 8, "ecnseen"),
        ("tcp_info_pacing_rate", 30196573072 // 8 + 1, "pacing_rate_bps"),
        ("inet_diag_msg_expires", 5486, "timer_expires"),
        ("inet_diag_msg_socket_source", bytes([127, 0, 0, 2]), "local_addr"),
        ("sk_mem_info_snd_buf", 1, "skmem_tb"),
        ("tcp_info_busy_time", 3000, "busy_ms"),
    ],
)
def test_compare_socket_flags_a_wrong_value(field, value, key):
    s = _sock("6_6_44/ss_tcp_info_a_10", cookie=0x1021)
    rec = _record_for_client_6_6_44()
    rec[field] = value
    problems = compare_socket(s, rec)
    assert any(p.startswith(key + ":") for p in problems), problems


# ---------------------------------------------------------------- case table


def test_case_table_ids_and_releases():
    table = {c.id: c for c in cases.golden_cases()}
    c = table["6_6_44-tcp_100_sockets_bbr"]
    assert (c.release, c.uname, c.ss_text.name, c.ss_run, c.runs) == ("6.6.44", None, "ss_tcp_info_a_100_bbr", 1, 3)
    c = table["4_19_319-tcp_10_sockets"]
    assert c.release == "4.19.319" and c.uname.startswith("Linux ") and c.ss_run == 0
    assert table["5_4_281-tcp_1000_sockets_sleep1ms"].ss_text.name == "5_4_281_ss_tcp_info_a_1000_sleep1ms"
    assert "all NUL" in table["6_1_103-tcp_1000_sockets"].problem
    assert table["6_6_44-tcp_10_sockets"].problem and table["6_6_44-tcp_10_sockets"].ss_run is None
    assert len(table) == 24


def test_case_table_env_override(tmp_path, monkeypatch):
    k = tmp_path / "9_9_9"
    k.mkdir()
    (k / "uname").write_text("Linux host 9.9.9-rc1 #1 SMP x86_64 GNU/Linux\n")
    (k / "9_9_9_tcp_5_sockets.pcap").write_bytes(b"\xd4\xc3\xb2\xa1")
    (k / "9_9_9_ss_tcp_info_a_5").write_text(HEADER)
    (k / "9_9_9_tcp_6_sockets.pcap").write_bytes(b"\xd4\xc3\xb2\xa1")  # no ss text: not a case
    monkeypatch.setenv("XTCP_TESTDATA", str(tmp_path))
    assert cases.testdata_root() == tmp_path
    (c,) = cases.golden_cases()
    assert (c.id, c.release, c.problem) == ("9_9_9-tcp_5_sockets", "9.9.9-rc1", None)
