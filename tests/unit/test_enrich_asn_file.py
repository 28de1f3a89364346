"""The ASN prefix file: what is accepted, and a one-line file:line error for what is not."""

from __future__ import annotations

import pytest

from xtcp_uring import ConfigError
from xtcp_uring.enrich.asn import AsnPrefix, parse_prefixes, read_prefix_file


def test_v4_v6_header_comments_quotes_and_as_prefix(tmp_path):
    path = tmp_path / "prefixes.csv"
    path.write_bytes(
        b"\xef\xbb\xbfprefix,asn,name\n"
        b"# documentation ranges\n"
        b"192.0.2.0/24,64500,Example Net\n"
        b"\n"
        b'2001:db8::/32, AS64501 ,"Example, Inc."\n'
        b"198.51.100.7,4200000000,one host\r\n"
        b"::ffff:203.0.113.0/120,64502,mapped\n"
    )
    assert read_prefix_file(path) == [
        AsnPrefix("192.0.2.0/24", 64500, "Example Net"),
        AsnPrefix("2001:db8::/32", 64501, "Example, Inc."),
        AsnPrefix("198.51.100.7/32", 4200000000, "one host"),
        AsnPrefix("203.0.113.0/24", 64502, "mapped"),  # the trie sees an IPv4-mapped prefix as IPv4
    ]


@pytest.mark.parametrize("line, message", [
    ("10.1.2.3/8,64500,x", "prefixes.csv:2: prefix '10.1.2.3/8' has host bits set (the network is 10.0.0.0/8)"),
    ("10.0.0.0/33,64500,x", "prefixes.csv:2: '10.0.0.0/33' is not an IPv4 or IPv6 prefix"),
    ("example.com,64500,x", "prefixes.csv:2: 'example.com' is not an IPv4 or IPv6 prefix"),
    ("fe80::%eth0/64,64500,x", "prefixes.csv:2: prefix 'fe80::%eth0/64' has a zone index"),
    ("10.0.0.0/8,ASX,x", "prefixes.csv:2: ASN 'ASX' is not a number from 0 to 4294967295"),
    ("10.0.0.0/8,4294967296,x", "prefixes.csv:2: ASN '4294967296' is not a number"),
    ("10.0.0.0/8,-1,x", "prefixes.csv:2: ASN '-1' is not a number"),
    ("10.0.0.0/8,64500", "prefixes.csv:2: expected 3 fields prefix,asn,name, got 2"),
    ("10.0.0.0/8,64500,x,extra", "prefixes.csv:2: expected 3 fields prefix,asn,name, got 4"),
    ("192.0.2.0/24,1,again", "prefixes.csv:2: prefix 192.0.2.0/24 is already on line 1"),
    ("::ffff:192.0.2.0/120,1,again", "prefixes.csv:2: prefix 192.0.2.0/24 is already on line 1"),
    ("10.0.0.0/8,1," + "n" * 257, "prefixes.csv:2: name longer than 256 characters"),
])
def test_each_bad_line_is_named_by_file_and_line(tmp_path, line, message):
    path = tmp_path / "prefixes.csv"
    path.write_text(f"192.0.2.0/24,64500,ok\n{line}\n10.0.0.0/16,1,fine\n")
    with pytest.raises(ConfigError) as err:
        read_prefix_file(path)
    assert str(err.value).startswith(str(tmp_path / message))
    assert "\n" not in str(err.value)


def test_the_first_error_is_shown_and_the_others_counted():
    with pytest.raises(ConfigError, match=r"^in:2: .*'x'.*\(and 2 more bad lines\); nothing was loaded$"):
        parse_prefixes(["10.0.0.0/8,1,a", "x,1,a", "y,1,a", b"\xff\xfe,1,a"], "in")


def test_not_utf8_empty_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match=r"in:1: not UTF-8 text"):
        parse_prefixes([b"\xff,1,a"], "in")
    (tmp_path / "empty.csv").write_text("prefix,asn,name\n# nothing yet\n")
    with pytest.raises(ConfigError, match=r"empty.csv: no prefixes"):
        read_prefix_file(tmp_path / "empty.csv")
    with pytest.raises(ConfigError, match=r"cannot read the ASN prefix file .*missing.csv: No such file"):
        read_prefix_file(tmp_path / "missing.csv")
