-- generated from proto/xtcp_flat_record.proto by tools/gen_schema.py; do not edit
-- (and xtcp_uring/clickhouse/rollups.py). Minute and hour rollups of xtcp_records, filled by
-- materialized views on every insert; run after xtcp_records.sql. {db} is the database.
-- Read them with the -Merge functions listed in rollups.py's READ, e.g.
--   SELECT location, quantilesBFloat16Merge(0.5, 0.9, 0.99)(rtt_us), sum(retrans_segs)
--   FROM {db}.xtcp_1m WHERE time > now() - INTERVAL 1 HOUR GROUP BY location

-- The previous sample's counters of each live socket (the deltas' other half), in memory
-- only: after a restart each socket's first sample is a baseline again. Pruned by
-- rollups.py's PRUNE_LAST (the embedded store runs it every 30 s; a server needs it scheduled as often).
CREATE TABLE IF NOT EXISTS {db}.xtcp_socket_last
(
    `socket_key` UInt64,
    `seen` UInt8,
    `seen_at` DateTime,
    `tcp_info_bytes_acked` UInt64,
    `tcp_info_bytes_received` UInt64,
    `tcp_info_bytes_retrans` UInt64,
    `tcp_info_segs_out` UInt64,
    `tcp_info_segs_in` UInt64,
    `tcp_info_total_retrans` UInt64
)
ENGINE = Join(ANY, LEFT, socket_key)
SETTINGS join_any_take_last_row = 1, persistent = 0;

-- Each record with its counters' change since the socket's previous sample; stores nothing.
CREATE TABLE IF NOT EXISTS {db}.xtcp_socket_deltas
(
    `sample_time` DateTime,
    `hostname` LowCardinality(String),
    `location` LowCardinality(String),
    `netns` LowCardinality(String),
    `remote_prefix` LowCardinality(String),
    `state` UInt8,
    `congestion_algorithm` LowCardinality(String),
    `socket_key` UInt64,
    `tcp_info_rtt` UInt32,
    `tcp_info_min_rtt` UInt32,
    `tcp_info_rtt_var` UInt32,
    `tcp_info_delivery_rate` UInt64,
    `tcp_info_delivery_rate_app_limited` UInt32,
    `tcp_info_bytes_acked` UInt64,
    `tcp_info_bytes_received` UInt64,
    `tcp_info_bytes_retrans` UInt64,
    `tcp_info_segs_out` UInt64,
    `tcp_info_segs_in` UInt64,
    `tcp_info_total_retrans` UInt64,
    `bytes_acked_delta` UInt64,
    `bytes_received_delta` UInt64,
    `bytes_retrans_delta` UInt64,
    `segs_out_delta` UInt64,
    `segs_in_delta` UInt64,
    `retrans_segs_delta` UInt64
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.xtcp_socket_deltas_mv TO {db}.xtcp_socket_deltas AS
SELECT
    toDateTime(intDiv(r.timestamp_ns, 1000000000)) AS sample_time,
    r.hostname AS hostname,
    r.location AS location,
    r.netns AS netns,
    r.remote_prefix AS remote_prefix,
    r.state AS state,
    r.congestion_algorithm AS congestion_algorithm,
    r.socket_key AS socket_key,
    r.tcp_info_rtt AS tcp_info_rtt,
    r.tcp_info_min_rtt AS tcp_info_min_rtt,
    r.tcp_info_rtt_var AS tcp_info_rtt_var,
    r.tcp_info_delivery_rate AS tcp_info_delivery_rate,
    r.tcp_info_delivery_rate_app_limited AS tcp_info_delivery_rate_app_limited,
    r.tcp_info_bytes_acked AS tcp_info_bytes_acked,
    r.tcp_info_bytes_received AS tcp_info_bytes_received,
    r.tcp_info_bytes_retrans AS tcp_info_bytes_retrans,
    r.tcp_info_segs_out AS tcp_info_segs_out,
    r.tcp_info_segs_in AS tcp_info_segs_in,
    r.tcp_info_total_retrans AS tcp_info_total_retrans,
    if(l.seen = 1 AND r.tcp_info_bytes_acked >= l.tcp_info_bytes_acked, r.tcp_info_bytes_acked - l.tcp_info_bytes_acked, 0) AS bytes_acked_delta,
    if(l.seen = 1 AND r.tcp_info_bytes_received >= l.tcp_info_bytes_received, r.tcp_info_bytes_received - l.tcp_info_bytes_received, 0) AS bytes_received_delta,
    if(l.seen = 1 AND r.tcp_info_bytes_retrans >= l.tcp_info_bytes_retrans, r.tcp_info_bytes_retrans - l.tcp_info_bytes_retrans, 0) AS bytes_retrans_delta,
    if(l.seen = 1 AND r.tcp_info_segs_out >= l.tcp_info_segs_out, r.tcp_info_segs_out - l.tcp_info_segs_out, 0) AS segs_out_delta,
    if(l.seen = 1 AND r.tcp_info_segs_in >= l.tcp_info_segs_in, r.tcp_info_segs_in - l.tcp_info_segs_in, 0) AS segs_in_delta,
    if(l.seen = 1 AND r.tcp_info_total_retrans >= l.tcp_info_total_retrans, r.tcp_info_total_retrans - l.tcp_info_total_retrans, 0) AS retrans_segs_delta
FROM
(
    SELECT
        timestamp_ns,
        hostname AS hostname,
        location AS location,
        netns AS netns,
        multiIf(length(inet_diag_msg_socket_destination) = 4, concat(IPv4NumToString(bitAnd(reinterpretAsUInt32(reverse(inet_diag_msg_socket_destination)), 4294967040)), '/24'), length(inet_diag_msg_socket_destination) = 16, concat(IPv6NumToString(toFixedString(concat(substring(inet_diag_msg_socket_destination, 1, 6), repeat(char(0), 10)), 16)), '/48'), '') AS remote_prefix,
        toUInt8(inet_diag_msg_state) AS state,
        congestion_algorithm_string AS congestion_algorithm,
        tcp_info_rtt,
        tcp_info_min_rtt,
        tcp_info_rtt_var,
        tcp_info_delivery_rate,
        tcp_info_delivery_rate_app_limited,
        tcp_info_bytes_acked,
        tcp_info_bytes_received,
        tcp_info_bytes_retrans,
        tcp_info_segs_out,
        tcp_info_segs_in,
        tcp_info_total_retrans,
        cityHash64(hostname, inet_diag_msg_socket_cookie) AS socket_key
    FROM {db}.xtcp_records
) AS r
ANY LEFT JOIN {db}.xtcp_socket_last AS l ON r.socket_key = l.socket_key;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.xtcp_socket_last_mv TO {db}.xtcp_socket_last AS
SELECT socket_key, 1 AS seen, sample_time AS seen_at, tcp_info_bytes_acked, tcp_info_bytes_received, tcp_info_bytes_retrans, tcp_info_segs_out, tcp_info_segs_in, tcp_info_total_retrans
FROM {db}.xtcp_socket_deltas;

CREATE TABLE IF NOT EXISTS {db}.xtcp_1m
(
    `time` DateTime,
    `hostname` LowCardinality(String),
    `location` LowCardinality(String),
    `netns` LowCardinality(String),
    `remote_prefix` LowCardinality(String),
    `state` UInt8,
    `congestion_algorithm` LowCardinality(String),
    `samples` SimpleAggregateFunction(sum, UInt64),
    `sockets` AggregateFunction(uniq, UInt64),
    `rtt_us` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt32),
    `min_rtt_us` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt32),
    `rtt_var_us` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt32),
    `delivery_rate` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt64),
    `bytes_acked` SimpleAggregateFunction(sum, UInt64),
    `bytes_received` SimpleAggregateFunction(sum, UInt64),
    `bytes_retrans` SimpleAggregateFunction(sum, UInt64),
    `segs_out` SimpleAggregateFunction(sum, UInt64),
    `segs_in` SimpleAggregateFunction(sum, UInt64),
    `retrans_segs` SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMMDD(time)
ORDER BY (time, hostname, location, netns, remote_prefix, state, congestion_algorithm)
TTL time + INTERVAL 35 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.xtcp_1m_mv TO {db}.xtcp_1m AS
SELECT
    toStartOfMinute(sample_time) AS time,
    hostname,
    location,
    netns,
    remote_prefix,
    state,
    congestion_algorithm,
    count() AS samples,
    uniqState(socket_key) AS sockets,
    quantilesBFloat16StateIf(0.5, 0.9, 0.99)(tcp_info_rtt, tcp_info_rtt > 0) AS rtt_us,
    quantilesBFloat16StateIf(0.5, 0.9, 0.99)(tcp_info_min_rtt, tcp_info_min_rtt > 0) AS min_rtt_us,
    quantilesBFloat16StateIf(0.5, 0.9, 0.99)(tcp_info_rtt_var, tcp_info_rtt > 0) AS rtt_var_us,
    quantilesBFloat16StateIf(0.5, 0.9, 0.99)(tcp_info_delivery_rate, tcp_info_delivery_rate > 0 AND tcp_info_delivery_rate_app_limited = 0) AS delivery_rate,
    sum(bytes_acked_delta) AS bytes_acked,
    sum(bytes_received_delta) AS bytes_received,
    sum(bytes_retrans_delta) AS bytes_retrans,
    sum(segs_out_delta) AS segs_out,
    sum(segs_in_delta) AS segs_in,
    sum(retrans_segs_delta) AS retrans_segs
FROM {db}.xtcp_socket_deltas
GROUP BY time, hostname, location, netns, remote_prefix, state, congestion_algorithm;

CREATE TABLE IF NOT EXISTS {db}.xtcp_1h
(
    `time` DateTime,
    `hostname` LowCardinality(String),
    `location` LowCardinality(String),
    `netns` LowCardinality(String),
    `remote_prefix` LowCardinality(String),
    `state` UInt8,
    `congestion_algorithm` LowCardinality(String),
    `samples` SimpleAggregateFunction(sum, UInt64),
    `sockets` AggregateFunction(uniq, UInt64),
    `rtt_us` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt32),
    `min_rtt_us` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt32),
    `rtt_var_us` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt32),
    `delivery_rate` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt64),
    `bytes_acked` SimpleAggregateFunction(sum, UInt64),
    `bytes_received` SimpleAggregateFunction(sum, UInt64),
    `bytes_retrans` SimpleAggregateFunction(sum, UInt64),
    `segs_out` SimpleAggregateFunction(sum, UInt64),
    `segs_in` SimpleAggregateFunction(sum, UInt64),
    `retrans_segs` SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, hostname, location, netns, remote_prefix, state, congestion_algorithm)
TTL time + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.xtcp_1h_mv TO {db}.xtcp_1h AS
SELECT
    toStartOfHour(time) AS time,
    hostname,
    location,
    netns,
    remote_prefix,
    state,
    congestion_algorithm,
    sum(samples) AS samples,
    uniqMergeState(sockets) AS sockets,
    quantilesBFloat16MergeState(0.5, 0.9, 0.99)(rtt_us) AS rtt_us,
    quantilesBFloat16MergeState(0.5, 0.9, 0.99)(min_rtt_us) AS min_rtt_us,
    quantilesBFloat16MergeState(0.5, 0.9, 0.99)(rtt_var_us) AS rtt_var_us,
    quantilesBFloat16MergeState(0.5, 0.9, 0.99)(delivery_rate) AS delivery_rate,
    sum(bytes_acked) AS bytes_acked,
    sum(bytes_received) AS bytes_received,
    sum(bytes_retrans) AS bytes_retrans,
    sum(segs_out) AS segs_out,
    sum(segs_in) AS segs_in,
    sum(retrans_segs) AS retrans_segs
FROM {db}.xtcp_1m
GROUP BY time, hostname, location, netns, remote_prefix, state, congestion_algorithm;

CREATE TABLE IF NOT EXISTS {db}.xtcp_host_1m
(
    `time` DateTime,
    `hostname` LowCardinality(String),
    `location` LowCardinality(String),
    `state` UInt8,
    `samples` SimpleAggregateFunction(sum, UInt64),
    `rtt_us` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt32),
    `min_rtt_us` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt32),
    `rtt_var_us` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt32),
    `delivery_rate` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt64),
    `bytes_acked` SimpleAggregateFunction(sum, UInt64),
    `bytes_received` SimpleAggregateFunction(sum, UInt64),
    `bytes_retrans` SimpleAggregateFunction(sum, UInt64),
    `segs_out` SimpleAggregateFunction(sum, UInt64),
    `segs_in` SimpleAggregateFunction(sum, UInt64),
    `retrans_segs` SimpleAggregateFunction(sum, UInt64),
    `sockets_hll` AggregateFunction(uniqCombined(12), UInt64),
    `rtt_log2` AggregateFunction(sumMap, Array(UInt8), Array(UInt64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMMDD(time)
ORDER BY (time, hostname, location, state)
TTL time + INTERVAL 35 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.xtcp_host_1m_mv TO {db}.xtcp_host_1m AS
SELECT
    toStartOfMinute(sample_time) AS time,
    hostname,
    location,
    state,
    count() AS samples,
    quantilesBFloat16StateIf(0.5, 0.9, 0.99)(tcp_info_rtt, tcp_info_rtt > 0) AS rtt_us,
    quantilesBFloat16StateIf(0.5, 0.9, 0.99)(tcp_info_min_rtt, tcp_info_min_rtt > 0) AS min_rtt_us,
    quantilesBFloat16StateIf(0.5, 0.9, 0.99)(tcp_info_rtt_var, tcp_info_rtt > 0) AS rtt_var_us,
    quantilesBFloat16StateIf(0.5, 0.9, 0.99)(tcp_info_delivery_rate, tcp_info_delivery_rate > 0 AND tcp_info_delivery_rate_app_limited = 0) AS delivery_rate,
    sum(bytes_acked_delta) AS bytes_acked,
    sum(bytes_received_delta) AS bytes_received,
    sum(bytes_retrans_delta) AS bytes_retrans,
    sum(segs_out_delta) AS segs_out,
    sum(segs_in_delta) AS segs_in,
    sum(retrans_segs_delta) AS retrans_segs,
    uniqCombinedState(12)(socket_key) AS sockets_hll,
    sumMapStateIf([toUInt8(floor(log2(greatest(tcp_info_rtt, 1))))], [toUInt64(1)], tcp_info_rtt > 0) AS rtt_log2
FROM {db}.xtcp_socket_deltas
GROUP BY time, hostname, location, state;

CREATE TABLE IF NOT EXISTS {db}.xtcp_host_1h
(
    `time` DateTime,
    `hostname` LowCardinality(String),
    `location` LowCardinality(String),
    `state` UInt8,
    `samples` SimpleAggregateFunction(sum, UInt64),
    `rtt_us` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt32),
    `min_rtt_us` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt32),
    `rtt_var_us` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt32),
    `delivery_rate` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt64),
    `bytes_acked` SimpleAggregateFunction(sum, UInt64),
    `bytes_received` SimpleAggregateFunction(sum, UInt64),
    `bytes_retrans` SimpleAggregateFunction(sum, UInt64),
    `segs_out` SimpleAggregateFunction(sum, UInt64),
    `segs_in` SimpleAggregateFunction(sum, UInt64),
    `retrans_segs` SimpleAggregateFunction(sum, UInt64),
    `sockets_hll` AggregateFunction(uniqCombined(12), UInt64),
    `rtt_log2` AggregateFunction(sumMap, Array(UInt8), Array(UInt64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, hostname, location, state)
TTL time + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.xtcp_host_1h_mv TO {db}.xtcp_host_1h AS
SELECT
    toStartOfHour(time) AS time,
    hostname,
    location,
    state,
    sum(samples) AS samples,
    quantilesBFloat16MergeState(0.5, 0.9, 0.99)(rtt_us) AS rtt_us,
    quantilesBFloat16MergeState(0.5, 0.9, 0.99)(min_rtt_us) AS min_rtt_us,
    quantilesBFloat16MergeState(0.5, 0.9, 0.99)(rtt_var_us) AS rtt_var_us,
    quantilesBFloat16MergeState(0.5, 0.9, 0.99)(delivery_rate) AS delivery_rate,
    sum(bytes_acked) AS bytes_acked,
    sum(bytes_received) AS bytes_received,
    sum(bytes_retrans) AS bytes_retrans,
    sum(segs_out) AS segs_out,
    sum(segs_in) AS segs_in,
    sum(retrans_segs) AS retrans_segs,
    uniqCombinedMergeState(12)(sockets_hll) AS sockets_hll,
    sumMapMergeState(rtt_log2) AS rtt_log2
FROM {db}.xtcp_host_1m
GROUP BY time, hostname, location, state;

CREATE TABLE IF NOT EXISTS {db}.xtcp_prefix_1h
(
    `time` DateTime,
    `hostname` LowCardinality(String),
    `location` LowCardinality(String),
    `remote_prefix` LowCardinality(String),
    `congestion_algorithm` LowCardinality(String),
    `samples` SimpleAggregateFunction(sum, UInt64),
    `sockets` AggregateFunction(uniq, UInt64),
    `rtt_us` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt32),
    `delivery_rate` AggregateFunction(quantilesBFloat16(0.5, 0.9, 0.99), UInt64),
    `bytes_acked` SimpleAggregateFunction(sum, UInt64),
    `bytes_received` SimpleAggregateFunction(sum, UInt64),
    `bytes_retrans` SimpleAggregateFunction(sum, UInt64),
    `segs_out` SimpleAggregateFunction(sum, UInt64),
    `segs_in` SimpleAggregateFunction(sum, UInt64),
    `retrans_segs` SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, hostname, location, remote_prefix, congestion_algorithm)
TTL time + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.xtcp_prefix_1h_mv TO {db}.xtcp_prefix_1h AS
SELECT
    toStartOfHour(sample_time) AS time,
    hostname,
    location,
    remote_prefix,
    congestion_algorithm,
    count() AS samples,
    uniqState(socket_key) AS sockets,
    quantilesBFloat16StateIf(0.5, 0.9, 0.99)(tcp_info_rtt, tcp_info_rtt > 0) AS rtt_us,
    quantilesBFloat16StateIf(0.5, 0.9, 0.99)(tcp_info_delivery_rate, tcp_info_delivery_rate > 0 AND tcp_info_delivery_rate_app_limited = 0) AS delivery_rate,
    sum(bytes_acked_delta) AS bytes_acked,
    sum(bytes_received_delta) AS bytes_received,
    sum(bytes_retrans_delta) AS bytes_retrans,
    sum(segs_out_delta) AS segs_out,
    sum(segs_in_delta) AS segs_in,
    sum(retrans_segs_delta) AS retrans_segs
FROM {db}.xtcp_socket_deltas
GROUP BY time, hostname, location, remote_prefix, congestion_algorithm;
