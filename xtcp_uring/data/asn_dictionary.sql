-- generated from examples/clickhouse/asn_dictionary.sql by tools/gen_schema.py; do not edit
-- The ASN dictionary: which autonomous system a remote address belongs to, by longest prefix.
--     SELECT dictGet('xtcp.asn', 'asn', <IPv6 or IPv4 value>), dictGet('xtcp.asn', 'name', ...)
-- IPv4 addresses are looked up as themselves or as IPv4-mapped IPv6 (::ffff:a.b.c.d); no
-- match gives 0 and ''. The record table's address columns hold raw bytes (4 or 16), so:
--     dictGet('xtcp.asn', 'asn', toFixedString(if(length(inet_diag_msg_socket_destination) = 4,
--         concat(unhex('00000000000000000000ffff'), inet_diag_msg_socket_destination),
--         inet_diag_msg_socket_destination), 16))
--
-- The embedded store: xtcp_uring.enrich.asn.load_asn_file(path, data_dir) checks a CSV file of
-- `prefix,asn,name` lines (every error names file:line), fills {db}.asn_prefixes and reloads
-- the dictionary; {db} is filled in there. A server: create both with {db} = xtcp
--     sed 's/{db}/xtcp/g' asn_dictionary.sql | clickhouse-client --multiquery
-- then load a file that passed that check and reload (LIFETIME(0): nothing reloads by itself):
--     clickhouse-client --query 'INSERT INTO xtcp.asn_prefixes FORMAT CSV' < prefixes.csv
--     clickhouse-client --query 'SYSTEM RELOAD DICTIONARY xtcp.asn'
-- One unparsable prefix makes the whole dictionary FAILED (see system.dictionaries), hence the
-- check. The source connects to the local server as `default`; if that user has a password add
-- USER '...' PASSWORD '...' inside CLICKHOUSE(...).
--
-- Why a table source and not SOURCE(FILE(...)): embedded chDB has no user_files_path, so a
-- file source fails with PATH_ACCESS_DENIED there (chDB 4.4 / ClickHouse 26.9); a table works
-- the same in both.

CREATE TABLE IF NOT EXISTS {db}.asn_prefixes
(
    `prefix` String COMMENT 'IPv4 or IPv6 network, CIDR notation (192.0.2.0/24, 2001:db8::/32)',
    `asn` UInt32 COMMENT 'autonomous system number',
    `name` String COMMENT 'autonomous system name, as given in the prefix file'
)
ENGINE = MergeTree
ORDER BY prefix;

CREATE DICTIONARY IF NOT EXISTS {db}.asn
(
    `prefix` String,
    `asn` UInt32,
    `name` String
)
PRIMARY KEY prefix
SOURCE(CLICKHOUSE(DB '{db}' TABLE 'asn_prefixes'))
LAYOUT(IP_TRIE)
LIFETIME(0);
