"""The ``xtcp.asn`` ip_trie dictionary in real chDB, from a prefix file generated here.

The file uses documentation and private ranges only (RFC 5737, RFC 3849, RFC 1918; ASNs from
RFC 5398/6996): no third-party data. An ``ipaddress`` longest-prefix match is the oracle.
"""

from __future__ import annotations

import ipaddress
import random
import subprocess
import sys

import pytest

from xtcp_uring import ConfigError, clickhouse
from xtcp_uring.enrich.asn import load_asn_file, load_prefixes, read_prefix_file



def generate_prefixes(seed: int = 12) -> list[tuple[str, int, str]]:
    """Nested IPv4 and IPv6 prefixes, so the longest match matters."""
    rng = random.Random(seed)
    rows = [("10.0.0.0/8", 64512, "ten"), ("2001:db8::/32", 64496, "doc six")]
    for i in range(64):
        rows.append((f"10.{i}.0.0/16", 65000 + i, f"ten-{i}"))
        rows.append((f"10.{i}.{rng.randrange(256)}.0/24", 4200000000 + i, f"ten-{i}, inner"))
        rows.append((f"2001:db8:{i:x}::/48", 65100 + i, f"six-{i}"))
        rows.append((f"2001:db8:{i:x}:{rng.randrange(1 << 16):x}::/64", 65200 + i, f"six-{i}-inner"))
    rows += [("192.0.2.0/24", 64497, "test-net-1"), ("198.51.100.0/24", 64498, "test-net-2")]
    return rows


def oracle(rows, address: str) -> tuple[int, str]:
    addr = ipaddress.ip_address(address)
    best = None
    for prefix, asn, name in rows:
        net = ipaddress.ip_network(prefix)
        if net.version == addr.version and addr in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, asn, name)
    return (best[1], best[2]) if best else (0, "")


def sample_addresses(rows, n: int = 300, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    out = ["10.0.0.1", "10.200.1.1", "11.0.0.1", "192.0.2.200", "203.0.113.9", "2001:db8::1", "2001:db9::1"]
    for _ in range(n):
        net = ipaddress.ip_network(rng.choice(rows)[0])
        out.append(str(net.network_address + rng.randrange(min(net.num_addresses, 1 << 20))))
    return out


def write(path, rows):
    path.write_text("prefix,asn,name\n" + "".join(f'{p},{a},"{n}"\n' for p, a, n in rows))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = clickhouse.open_store(tmp_path_factory.mktemp("asn-store"))
    yield s
    s.release()


def lookups(store, addresses: list[str], key: str) -> list[tuple[int, str]]:
    values = ",".join(f"('{a}')" for a in addresses)
    sql = (f"SELECT dictGet('xtcp.asn', 'asn', {key}), dictGet('xtcp.asn', 'name', {key}) "
           f"FROM values('a String', {values})")
    out = []
    for line in str(store.query(sql, "TabSeparated")).splitlines():
        asn, name = line.split("\t")
        out.append((int(asn), name))
    return out


def test_dictget_answers_v4_mapped_and_v6_by_longest_prefix(store, tmp_path):
    rows = generate_prefixes()
    assert load_prefixes(store, read_prefix_file(write(tmp_path / "p.csv", rows))) == len(rows)
    addresses = sample_addresses(rows)
    expected = [oracle(rows, a) for a in addresses]
    assert sum(1 for e in expected if e[0]) > len(addresses) // 2  # the sample mostly hits
    # IPv6 values: IPv4 as IPv4-mapped (what toIPv6 gives for a dotted address)
    assert lookups(store, addresses, "toIPv6(a)") == expected
    v4 = [a for a in addresses if "." in a]
    assert lookups(store, v4, "toIPv4(a)") == [oracle(rows, a) for a in v4]


def test_raw_address_bytes_of_the_record_table_can_be_looked_up(store, tmp_path):
    """Today's record columns hold 4 or 16 raw bytes: the expression in asn_dictionary.sql."""
    rows = generate_prefixes()
    load_prefixes(store, read_prefix_file(write(tmp_path / "p.csv", rows)))
    addresses = ["10.3.1.1", "198.51.100.20", "2001:db8:5::9", "172.16.0.1"]
    raw = ",".join(f"(unhex('{ipaddress.ip_address(a).packed.hex()}'))" for a in addresses)
    key = "toFixedString(if(length(b) = 4, concat(unhex('00000000000000000000ffff'), b), b), 16)"
    got = str(store.query(f"SELECT dictGet('xtcp.asn', 'asn', {key}) FROM values('b String', {raw})", "CSV")).split()
    assert [int(x) for x in got] == [oracle(rows, a)[0] for a in addresses]


def test_a_new_file_replaces_the_old_prefixes_and_a_bad_one_changes_nothing(store, tmp_path):
    load_prefixes(store, read_prefix_file(write(tmp_path / "a.csv", generate_prefixes())))
    assert lookups(store, ["10.1.0.1"], "toIPv6(a)")[0][0] != 0
    new = [("100.64.0.0/10", 64510, "cgnat")]
    assert load_prefixes(store, read_prefix_file(write(tmp_path / "b.csv", new))) == 1
    assert lookups(store, ["10.1.0.1", "100.64.1.1"], "toIPv6(a)") == [(0, ""), (64510, "cgnat")]
    bad = tmp_path / "bad.csv"
    bad.write_text("100.64.0.0/10,64511,x\n10.0.0.0/8,64512,y\nnot-a-prefix,1,z\n")
    with pytest.raises(ConfigError, match=r"bad.csv:3: 'not-a-prefix' is not an IPv4 or IPv6 prefix"):
        load_prefixes(store, read_prefix_file(bad))
    assert lookups(store, ["100.64.1.1"], "toIPv6(a)") == [(64510, "cgnat")]
    tables = str(store.query("SELECT name FROM system.tables WHERE database = 'xtcp' AND name LIKE 'asn%'", "CSV"))
    assert sorted(tables.split()) == ['"asn"', '"asn_prefixes"']  # no loading table left behind


def test_the_load_command_and_a_later_query_are_separate_processes(tmp_path):
    """As the CLI runs it: one process loads, the store keeps the dictionary, another queries."""
    rows = generate_prefixes()
    path = write(tmp_path / "p.csv", rows)
    data_dir = tmp_path / "store"
    load = subprocess.run([sys.executable, "-c", "import sys; from xtcp_uring.enrich.asn import load_asn_file; "
                           "print(load_asn_file(sys.argv[1], sys.argv[2]))", str(path), str(data_dir)],
                          capture_output=True, text=True, timeout=300)
    assert load.returncode == 0, load.stderr
    assert load.stdout.split()[-1] == str(len(rows))
    query = subprocess.run([sys.executable, "-m", "xtcp_uring", "query", "--data-dir", str(data_dir), "--format",
                            "csv", "SELECT dictGet('xtcp.asn', 'name', toIPv6('2001:db8:3::1'))"],
                           capture_output=True, text=True, timeout=300)
    assert query.returncode == 0, query.stderr
    assert query.stdout.split("\n")[1] == f'"{oracle(rows, "2001:db8:3::1")[1]}"'


def test_a_bad_file_fails_before_the_store_is_opened(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("10.0.0.0/8,64512,x\n10.0.0.0/8,64513,again\n")
    with pytest.raises(ConfigError, match=r"bad.csv:2: prefix 10.0.0.0/8 is already on line 1"):
        load_asn_file(bad, tmp_path / "never-created")
    assert not (tmp_path / "never-created").exists()
