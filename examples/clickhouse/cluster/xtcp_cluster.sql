-- generated from proto/xtcp_flat_record.proto by tools/gen_schema.py; do not edit
-- A sharded, replicated cluster named xtcp_cluster (remote_servers), macros {shard} and
-- {replica} per node, ZooKeeper or ClickHouse Keeper. Local tables end in _local; the
-- Distributed tables of the usual names (xtcp_records, xtcp_1m, xtcp_1h, ...) are what to query.
-- Raw rows keep 7 days, the minute rollups 35, the hour rollups 400 (edit the TTL lines to change).
-- See README.md beside this file.

CREATE DATABASE IF NOT EXISTS xtcp ON CLUSTER xtcp_cluster;

CREATE TABLE IF NOT EXISTS xtcp.xtcp_records_local ON CLUSTER xtcp_cluster
(
    `schema_version` UInt32 CODEC(ZSTD(1)) COMMENT 'version number',
    `daemon_version` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text',
    `timestamp_ns` Int64 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'nanoseconds since the Unix epoch (UTC) - the poll\'s send time, epoch ns',
    `poll_id` UInt64 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'count - counts polls of this daemon',
    `hostname` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text',
    `location` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text - PoP or site (--location)',
    `kernel_release` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text - uname -r, picks the tcp_info tail layout',
    `netns` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text - bind-mount name, or pid:<pid> (kept while it lives), or host (the initial namespace)',
    `netns_inode` UInt64 CODEC(ZSTD(1)) COMMENT 'inode number',
    `nsid` UInt32 CODEC(ZSTD(1)) COMMENT 'id',
    `netns_cookie` UInt64 CODEC(ZSTD(1)) COMMENT 'id - SO_NETNS_COOKIE, unique per boot',
    `netns_pid` UInt32 CODEC(ZSTD(1)) COMMENT 'process id - one pid inside the namespace (0: none)',
    `container_id` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text - the app container(s), comma-separated',
    `container_runtime` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text - containerd, cri-o, docker, podman or runc',
    `container_name` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text - in the order of container_id',
    `container_image` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text - in the order of container_id',
    `pod_name` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text - Kubernetes pod of the namespace\'s containers',
    `pod_namespace` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text - Kubernetes namespace of that pod',
    `label` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text - --label pairs: k=v,k2=v2, sorted by key',
    `tag` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text - --tag, free text',
    `record_counter` UInt64 CODEC(ZSTD(1)) COMMENT 'count - xtcp2 column, not filled',
    `socket_fd` UInt64 CODEC(ZSTD(1)) COMMENT 'file descriptor - xtcp2 column, not filled',
    `netlinker_id` UInt64 CODEC(ZSTD(1)) COMMENT 'id - xtcp2 column, not filled',
    `dump_family` UInt32 CODEC(ZSTD(1)) COMMENT 'address family (2 = AF_INET, 10 = AF_INET6) - address family of the dump request',
    `event` Enum8('EVENT_POLL' = 0, 'EVENT_CLOSE' = 1) CODEC(ZSTD(1)) COMMENT 'what took the record (EVENT_POLL: a poll, EVENT_CLOSE: the kernel broadcast when the socket was destroyed) - set by the close-event reader, 0 = poll',
    `event_time_ns` Int64 CODEC(Delta, ZSTD(1)) COMMENT 'nanoseconds since the Unix epoch (UTC) - close records: when the broadcast was received, epoch ns, 0 for polls',
    `uplink1_ifname` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink1_nic_driver` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink1_nic_model` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink1_nic_pci_vendor` UInt32 CODEC(ZSTD(1)) COMMENT 'PCI id - xtcp2 column, not filled',
    `uplink1_nic_pci_device` UInt32 CODEC(ZSTD(1)) COMMENT 'PCI id - xtcp2 column, not filled',
    `uplink1_nic_bus_info` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink1_nic_speed_mbps` UInt32 CODEC(ZSTD(1)) COMMENT 'megabits per second - xtcp2 column, not filled',
    `uplink1_nic_fw_version` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink1_lldp_chassis_name` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink1_lldp_chassis_id` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink1_lldp_mgmt_ip` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink1_lldp_port_id` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink1_lldp_port_descr` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink2_ifname` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink2_nic_driver` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink2_nic_model` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink2_nic_pci_vendor` UInt32 CODEC(ZSTD(1)) COMMENT 'PCI id - xtcp2 column, not filled',
    `uplink2_nic_pci_device` UInt32 CODEC(ZSTD(1)) COMMENT 'PCI id - xtcp2 column, not filled',
    `uplink2_nic_bus_info` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink2_nic_speed_mbps` UInt32 CODEC(ZSTD(1)) COMMENT 'megabits per second - xtcp2 column, not filled',
    `uplink2_nic_fw_version` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink2_lldp_chassis_name` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink2_lldp_chassis_id` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink2_lldp_mgmt_ip` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink2_lldp_port_id` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `uplink2_lldp_port_descr` String CODEC(ZSTD(1)) COMMENT 'text - xtcp2 column, not filled',
    `inet_diag_msg_family` UInt32 CODEC(ZSTD(1)) COMMENT 'address family (2 = AF_INET, 10 = AF_INET6)',
    `inet_diag_msg_state` UInt32 CODEC(ZSTD(1)) COMMENT 'TCP state (1 = ESTABLISHED ... 10 = LISTEN, 12 = NEW_SYN_RECV)',
    `inet_diag_msg_timer` UInt32 CODEC(ZSTD(1)) COMMENT 'timer kind (0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 zero window probe)',
    `inet_diag_msg_retrans` UInt32 CODEC(ZSTD(1)) COMMENT 'count',
    `inet_diag_msg_socket_source_port` UInt32 CODEC(ZSTD(1)) COMMENT 'port number - host order',
    `inet_diag_msg_socket_destination_port` UInt32 CODEC(ZSTD(1)) COMMENT 'port number - host order',
    `inet_diag_msg_socket_source` String CODEC(ZSTD(1)) COMMENT 'address bytes, network order: 4 (IPv4) or 16 (IPv6) - 4 B (AF_INET) or 16 B',
    `inet_diag_msg_socket_destination` String CODEC(ZSTD(1)) COMMENT 'address bytes, network order: 4 (IPv4) or 16 (IPv6) - 4 B (AF_INET) or 16 B',
    `inet_diag_msg_socket_interface` UInt32 CODEC(ZSTD(1)) COMMENT 'interface index (0: not bound)',
    `inet_diag_msg_socket_cookie` UInt64 CODEC(ZSTD(1)) COMMENT 'id',
    `inet_diag_msg_socket_dest_asn` UInt64 CODEC(ZSTD(1)) COMMENT 'AS number - xtcp2 column, not filled',
    `inet_diag_msg_socket_next_hop_asn` UInt64 CODEC(ZSTD(1)) COMMENT 'AS number - xtcp2 column, not filled',
    `inet_diag_msg_expires` UInt32 CODEC(Delta, ZSTD(1)) COMMENT 'milliseconds - ms',
    `inet_diag_msg_rqueue` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `inet_diag_msg_wqueue` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `inet_diag_msg_uid` UInt32 CODEC(ZSTD(1)) COMMENT 'user id',
    `inet_diag_msg_inode` UInt32 CODEC(ZSTD(1)) COMMENT 'inode number',
    `mem_info_rmem` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `mem_info_wmem` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `mem_info_fmem` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `mem_info_tmem` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `tcp_info_state` UInt32 CODEC(ZSTD(1)) COMMENT 'TCP state (1 = ESTABLISHED ... 10 = LISTEN, 12 = NEW_SYN_RECV)',
    `tcp_info_ca_state` UInt32 CODEC(ZSTD(1)) COMMENT 'congestion avoidance state (0 Open, 1 Disorder, 2 CWR, 3 Recovery, 4 Loss)',
    `tcp_info_retransmits` UInt32 CODEC(ZSTD(1)) COMMENT 'count',
    `tcp_info_probes` UInt32 CODEC(ZSTD(1)) COMMENT 'count',
    `tcp_info_backoff` UInt32 CODEC(ZSTD(1)) COMMENT 'count',
    `tcp_info_options` UInt32 CODEC(ZSTD(1)) COMMENT 'bitmask',
    `tcp_info_send_scale` UInt32 CODEC(ZSTD(1)) COMMENT 'window scale shift, bits',
    `tcp_info_rcv_scale` UInt32 CODEC(ZSTD(1)) COMMENT 'window scale shift, bits',
    `tcp_info_delivery_rate_app_limited` UInt32 CODEC(ZSTD(1)) COMMENT 'flag (0 or 1)',
    `tcp_info_fast_open_client_failed` UInt32 CODEC(ZSTD(1)) COMMENT 'flag (0 or 1)',
    `tcp_info_rto` UInt32 CODEC(ZSTD(1)) COMMENT 'microseconds',
    `tcp_info_ato` UInt32 CODEC(ZSTD(1)) COMMENT 'microseconds',
    `tcp_info_snd_mss` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `tcp_info_rcv_mss` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `tcp_info_unacked` UInt32 CODEC(ZSTD(1)) COMMENT 'segments',
    `tcp_info_sacked` UInt32 CODEC(ZSTD(1)) COMMENT 'segments',
    `tcp_info_lost` UInt32 CODEC(ZSTD(1)) COMMENT 'segments',
    `tcp_info_retrans` UInt32 CODEC(ZSTD(1)) COMMENT 'segments',
    `tcp_info_fackets` UInt32 CODEC(ZSTD(1)) COMMENT 'segments',
    `tcp_info_last_data_sent` UInt32 CODEC(Delta, ZSTD(1)) COMMENT 'milliseconds',
    `tcp_info_last_ack_sent` UInt32 CODEC(Delta, ZSTD(1)) COMMENT 'milliseconds',
    `tcp_info_last_data_recv` UInt32 CODEC(Delta, ZSTD(1)) COMMENT 'milliseconds',
    `tcp_info_last_ack_recv` UInt32 CODEC(Delta, ZSTD(1)) COMMENT 'milliseconds',
    `tcp_info_pmtu` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `tcp_info_rcv_ssthresh` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `tcp_info_rtt` UInt32 CODEC(ZSTD(1)) COMMENT 'microseconds',
    `tcp_info_rtt_var` UInt32 CODEC(ZSTD(1)) COMMENT 'microseconds',
    `tcp_info_snd_ssthresh` UInt32 CODEC(ZSTD(1)) COMMENT 'segments',
    `tcp_info_snd_cwnd` UInt32 CODEC(ZSTD(1)) COMMENT 'segments',
    `tcp_info_adv_mss` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `tcp_info_reordering` UInt32 CODEC(ZSTD(1)) COMMENT 'segments',
    `tcp_info_rcv_rtt` UInt32 CODEC(ZSTD(1)) COMMENT 'microseconds',
    `tcp_info_rcv_space` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `tcp_info_total_retrans` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'segments',
    `tcp_info_pacing_rate` UInt64 CODEC(ZSTD(1)) COMMENT 'bytes per second',
    `tcp_info_max_pacing_rate` UInt64 CODEC(ZSTD(1)) COMMENT 'bytes per second',
    `tcp_info_bytes_acked` UInt64 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'bytes',
    `tcp_info_bytes_received` UInt64 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'bytes',
    `tcp_info_segs_out` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'segments',
    `tcp_info_segs_in` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'segments',
    `tcp_info_not_sent_bytes` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `tcp_info_min_rtt` UInt32 CODEC(ZSTD(1)) COMMENT 'microseconds',
    `tcp_info_data_segs_in` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'segments',
    `tcp_info_data_segs_out` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'segments',
    `tcp_info_delivery_rate` UInt64 CODEC(ZSTD(1)) COMMENT 'bytes per second',
    `tcp_info_busy_time` UInt64 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'microseconds',
    `tcp_info_rwnd_limited` UInt64 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'microseconds',
    `tcp_info_sndbuf_limited` UInt64 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'microseconds',
    `tcp_info_delivered` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'segments',
    `tcp_info_delivered_ce` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'segments',
    `tcp_info_bytes_sent` UInt64 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'bytes',
    `tcp_info_bytes_retrans` UInt64 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'bytes',
    `tcp_info_dsack_dups` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'count',
    `tcp_info_reord_seen` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'count',
    `tcp_info_rcv_ooopack` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'packets',
    `tcp_info_snd_wnd` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `tcp_info_rcv_wnd` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `tcp_info_rehash` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'count',
    `tcp_info_total_rto` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'count',
    `tcp_info_total_rto_recoveries` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'count',
    `tcp_info_total_rto_time` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'milliseconds',
    `tcp_info_received_ce` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'packets - 6.18',
    `tcp_info_delivered_e1_bytes` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'bytes - 6.18',
    `tcp_info_delivered_e0_bytes` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'bytes - 6.18',
    `tcp_info_delivered_ce_bytes` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'bytes - 6.18',
    `tcp_info_received_e1_bytes` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'bytes - 6.18',
    `tcp_info_received_e0_bytes` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'bytes - 6.18',
    `tcp_info_received_ce_bytes` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'bytes - 6.18',
    `tcp_info_accecn_fail_mode` UInt32 CODEC(ZSTD(1)) COMMENT 'mode bits - 6.18 (u16), 7.0 (4 bits)',
    `tcp_info_accecn_opt_seen` UInt32 CODEC(ZSTD(1)) COMMENT 'mode bits - 6.18 (u16), 7.0 (2 bits)',
    `tcp_info_ecn_mode` UInt32 CODEC(ZSTD(1)) COMMENT 'mode bits - 7.0',
    `tcp_info_options2` UInt32 CODEC(ZSTD(1)) COMMENT 'bitmask - 7.0 (24 bits)',
    `tcp_info_len` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes - INET_DIAG_INFO payload bytes, 0 = absent',
    `congestion_algorithm_string` LowCardinality(String) CODEC(ZSTD(1)) COMMENT 'text',
    `congestion_algorithm_enum` Enum8('CONGESTION_ALGORITHM_UNSPECIFIED' = 0, 'CONGESTION_ALGORITHM_CUBIC' = 1, 'CONGESTION_ALGORITHM_DCTCP' = 2, 'CONGESTION_ALGORITHM_VEGAS' = 3, 'CONGESTION_ALGORITHM_PRAGUE' = 4, 'CONGESTION_ALGORITHM_BBR1' = 5, 'CONGESTION_ALGORITHM_BBR2' = 6, 'CONGESTION_ALGORITHM_BBR3' = 7, 'CONGESTION_ALGORITHM_RENO' = 8, 'CONGESTION_ALGORITHM_OTHER' = 9) CODEC(ZSTD(1)) COMMENT 'enum',
    `type_of_service` UInt32 CODEC(ZSTD(1)) COMMENT 'header byte (DSCP and ECN bits) - INET_DIAG_TOS (5)',
    `traffic_class` UInt32 CODEC(ZSTD(1)) COMMENT 'header byte (DSCP and ECN bits) - INET_DIAG_TCLASS (6)',
    `sk_mem_info_rmem_alloc` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `sk_mem_info_rcv_buf` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `sk_mem_info_wmem_alloc` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `sk_mem_info_snd_buf` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `sk_mem_info_fwd_alloc` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `sk_mem_info_wmem_queued` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `sk_mem_info_optmem` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes',
    `sk_mem_info_backlog` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes - 3.6',
    `sk_mem_info_drops` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'packets - 4.6',
    `shutdown_state` UInt32 CODEC(ZSTD(1)) COMMENT 'bitmask (1 = receive shut down, 2 = send shut down) - INET_DIAG_SHUTDOWN (8)',
    `vegas_info_enabled` UInt32 CODEC(ZSTD(1)) COMMENT 'flag (0 or 1)',
    `vegas_info_rtt_cnt` UInt32 CODEC(ZSTD(1)) COMMENT 'count',
    `vegas_info_rtt` UInt32 CODEC(ZSTD(1)) COMMENT 'microseconds',
    `vegas_info_min_rtt` UInt32 CODEC(ZSTD(1)) COMMENT 'microseconds',
    `dctcp_info_enabled` UInt32 CODEC(ZSTD(1)) COMMENT 'flag (0 or 1)',
    `dctcp_info_ce_state` UInt32 CODEC(ZSTD(1)) COMMENT 'state',
    `dctcp_info_alpha` UInt32 CODEC(ZSTD(1)) COMMENT 'fraction of 1024',
    `dctcp_info_ab_ecn` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'bytes',
    `dctcp_info_ab_tot` UInt32 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'bytes',
    `bbr_info_bw_lo` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes per second (low / high 32 bits of one 64-bit value)',
    `bbr_info_bw_hi` UInt32 CODEC(ZSTD(1)) COMMENT 'bytes per second (low / high 32 bits of one 64-bit value)',
    `bbr_info_min_rtt` UInt32 CODEC(ZSTD(1)) COMMENT 'microseconds',
    `bbr_info_pacing_gain` UInt32 CODEC(ZSTD(1)) COMMENT 'gain, fixed point (256 = 1.0)',
    `bbr_info_cwnd_gain` UInt32 CODEC(ZSTD(1)) COMMENT 'gain, fixed point (256 = 1.0)',
    `class_id` UInt32 CODEC(ZSTD(1)) COMMENT 'id - INET_DIAG_CLASS_ID (17)',
    `sock_opt` UInt32 CODEC(ZSTD(1)) COMMENT 'bitmask - INET_DIAG_SOCKOPT (22), 2 B bitfield',
    `c_group` UInt64 CODEC(ZSTD(1)) COMMENT 'cgroup v2 id - INET_DIAG_CGROUP_ID (21)',
    `protocol` UInt32 CODEC(ZSTD(1)) COMMENT 'IP protocol number (6 = TCP) - INET_DIAG_PROTOCOL (10)',
    `skv6only` UInt32 CODEC(ZSTD(1)) COMMENT 'flag (0 or 1) - INET_DIAG_SKV6ONLY (11)',
    `mark` UInt32 CODEC(ZSTD(1)) COMMENT 'firewall mark - INET_DIAG_MARK (15), needs CAP_NET_ADMIN',
    `md5sig_keys` UInt32 CODEC(ZSTD(1)) COMMENT 'count - INET_DIAG_MD5SIG (18): number of keys',
    `attributes_present` UInt32 CODEC(ZSTD(1)) COMMENT 'bitmask',
    `sec` Int64 ALIAS intDiv(timestamp_ns, 1000000000) COMMENT 'seconds since the Unix epoch (UTC): the poll time',
    `nsec` UInt32 ALIAS timestamp_ns % 1000000000 COMMENT 'nanoseconds past sec',
    `src` IPv6 ALIAS CAST(toFixedString(if(length(inet_diag_msg_socket_source) = 4, concat(unhex('00000000000000000000FFFF'), inet_diag_msg_socket_source), inet_diag_msg_socket_source), 16) AS IPv6) COMMENT 'IPv6 address (IPv4 as ::ffff:a.b.c.d): inet_diag_msg_socket_source, for SQL and dictGet(\'xtcp.asn\', ...)',
    `dst` IPv6 ALIAS CAST(toFixedString(if(length(inet_diag_msg_socket_destination) = 4, concat(unhex('00000000000000000000FFFF'), inet_diag_msg_socket_destination), inet_diag_msg_socket_destination), 16) AS IPv6) COMMENT 'IPv6 address (IPv4 as ::ffff:a.b.c.d): inet_diag_msg_socket_destination'
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/xtcp/xtcp_records_local', '{replica}')
PARTITION BY intDiv(timestamp_ns, 3600000000000)
ORDER BY (hostname, netns, intDiv(timestamp_ns, 3600000000000), inet_diag_msg_socket_cookie, timestamp_ns)
TTL toDateTime(intDiv(timestamp_ns, 1000000000)) + INTERVAL 7 DAY
SETTINGS ttl_only_drop_parts = 1;

-- The previous sample's counters of each live socket (the deltas' other half), in memory
-- only: after a restart each socket's first sample is a baseline again. Pruned by
-- rollups.py's PRUNE_LAST (the embedded store runs it every 30 s; a server needs it scheduled as often).
CREATE TABLE IF NOT EXISTS xtcp.xtcp_socket_last ON CLUSTER xtcp_cluster
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
CREATE TABLE IF NOT EXISTS xtcp.xtcp_socket_deltas ON CLUSTER xtcp_cluster
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

CREATE MATERIALIZED VIEW IF NOT EXISTS xtcp.xtcp_socket_deltas_mv ON CLUSTER xtcp_cluster TO xtcp.xtcp_socket_deltas AS
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
    FROM xtcp.xtcp_records_local
) AS r
ANY LEFT JOIN xtcp.xtcp_socket_last AS l ON r.socket_key = l.socket_key;

CREATE MATERIALIZED VIEW IF NOT EXISTS xtcp.xtcp_socket_last_mv ON CLUSTER xtcp_cluster TO xtcp.xtcp_socket_last AS
SELECT socket_key, 1 AS seen, sample_time AS seen_at, tcp_info_bytes_acked, tcp_info_bytes_received, tcp_info_bytes_retrans, tcp_info_segs_out, tcp_info_segs_in, tcp_info_total_retrans
FROM xtcp.xtcp_socket_deltas;

CREATE TABLE IF NOT EXISTS xtcp.xtcp_1m_local ON CLUSTER xtcp_cluster
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/xtcp/xtcp_1m_local', '{replica}')
PARTITION BY toYYYYMMDD(time)
ORDER BY (time, hostname, location, netns, remote_prefix, state, congestion_algorithm)
TTL time + INTERVAL 35 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS xtcp.xtcp_1m_local_mv ON CLUSTER xtcp_cluster TO xtcp.xtcp_1m_local AS
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
FROM xtcp.xtcp_socket_deltas
GROUP BY time, hostname, location, netns, remote_prefix, state, congestion_algorithm;

CREATE TABLE IF NOT EXISTS xtcp.xtcp_1h_local ON CLUSTER xtcp_cluster
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/xtcp/xtcp_1h_local', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (time, hostname, location, netns, remote_prefix, state, congestion_algorithm)
TTL time + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS xtcp.xtcp_1h_local_mv ON CLUSTER xtcp_cluster TO xtcp.xtcp_1h_local AS
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
FROM xtcp.xtcp_1m_local
GROUP BY time, hostname, location, netns, remote_prefix, state, congestion_algorithm;

CREATE TABLE IF NOT EXISTS xtcp.xtcp_host_1m_local ON CLUSTER xtcp_cluster
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/xtcp/xtcp_host_1m_local', '{replica}')
PARTITION BY toYYYYMMDD(time)
ORDER BY (time, hostname, location, state)
TTL time + INTERVAL 35 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS xtcp.xtcp_host_1m_local_mv ON CLUSTER xtcp_cluster TO xtcp.xtcp_host_1m_local AS
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
FROM xtcp.xtcp_socket_deltas
GROUP BY time, hostname, location, state;

CREATE TABLE IF NOT EXISTS xtcp.xtcp_host_1h_local ON CLUSTER xtcp_cluster
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/xtcp/xtcp_host_1h_local', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (time, hostname, location, state)
TTL time + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS xtcp.xtcp_host_1h_local_mv ON CLUSTER xtcp_cluster TO xtcp.xtcp_host_1h_local AS
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
FROM xtcp.xtcp_host_1m_local
GROUP BY time, hostname, location, state;

CREATE TABLE IF NOT EXISTS xtcp.xtcp_prefix_1h_local ON CLUSTER xtcp_cluster
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/xtcp/xtcp_prefix_1h_local', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (time, hostname, location, remote_prefix, congestion_algorithm)
TTL time + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS xtcp.xtcp_prefix_1h_local_mv ON CLUSTER xtcp_cluster TO xtcp.xtcp_prefix_1h_local AS
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
FROM xtcp.xtcp_socket_deltas
GROUP BY time, hostname, location, remote_prefix, congestion_algorithm;

CREATE TABLE IF NOT EXISTS xtcp.xtcp_records ON CLUSTER xtcp_cluster AS xtcp.xtcp_records_local
ENGINE = Distributed(xtcp_cluster, xtcp, xtcp_records_local, cityHash64(hostname));

CREATE TABLE IF NOT EXISTS xtcp.xtcp_1m ON CLUSTER xtcp_cluster AS xtcp.xtcp_1m_local
ENGINE = Distributed(xtcp_cluster, xtcp, xtcp_1m_local, cityHash64(hostname));

CREATE TABLE IF NOT EXISTS xtcp.xtcp_1h ON CLUSTER xtcp_cluster AS xtcp.xtcp_1h_local
ENGINE = Distributed(xtcp_cluster, xtcp, xtcp_1h_local, cityHash64(hostname));

CREATE TABLE IF NOT EXISTS xtcp.xtcp_host_1m ON CLUSTER xtcp_cluster AS xtcp.xtcp_host_1m_local
ENGINE = Distributed(xtcp_cluster, xtcp, xtcp_host_1m_local, cityHash64(hostname));

CREATE TABLE IF NOT EXISTS xtcp.xtcp_host_1h ON CLUSTER xtcp_cluster AS xtcp.xtcp_host_1h_local
ENGINE = Distributed(xtcp_cluster, xtcp, xtcp_host_1h_local, cityHash64(hostname));

CREATE TABLE IF NOT EXISTS xtcp.xtcp_prefix_1h ON CLUSTER xtcp_cluster AS xtcp.xtcp_prefix_1h_local
ENGINE = Distributed(xtcp_cluster, xtcp, xtcp_prefix_1h_local, cityHash64(hostname));

-- One Kafka consumer per node: the topic's partitions (keyed by hostname) are shared by
-- every node of the group, each inserting into its own shard's local table.
CREATE TABLE IF NOT EXISTS xtcp.xtcp_records_kafka ON CLUSTER xtcp_cluster
(
    `schema_version` UInt32 COMMENT 'version number',
    `daemon_version` LowCardinality(String) COMMENT 'text',
    `timestamp_ns` Int64 COMMENT 'nanoseconds since the Unix epoch (UTC) - the poll\'s send time, epoch ns',
    `poll_id` UInt64 COMMENT 'count - counts polls of this daemon',
    `hostname` LowCardinality(String) COMMENT 'text',
    `location` LowCardinality(String) COMMENT 'text - PoP or site (--location)',
    `kernel_release` LowCardinality(String) COMMENT 'text - uname -r, picks the tcp_info tail layout',
    `netns` LowCardinality(String) COMMENT 'text - bind-mount name, or pid:<pid> (kept while it lives), or host (the initial namespace)',
    `netns_inode` UInt64 COMMENT 'inode number',
    `nsid` UInt32 COMMENT 'id',
    `netns_cookie` UInt64 COMMENT 'id - SO_NETNS_COOKIE, unique per boot',
    `netns_pid` UInt32 COMMENT 'process id - one pid inside the namespace (0: none)',
    `container_id` LowCardinality(String) COMMENT 'text - the app container(s), comma-separated',
    `container_runtime` LowCardinality(String) COMMENT 'text - containerd, cri-o, docker, podman or runc',
    `container_name` LowCardinality(String) COMMENT 'text - in the order of container_id',
    `container_image` LowCardinality(String) COMMENT 'text - in the order of container_id',
    `pod_name` LowCardinality(String) COMMENT 'text - Kubernetes pod of the namespace\'s containers',
    `pod_namespace` LowCardinality(String) COMMENT 'text - Kubernetes namespace of that pod',
    `label` LowCardinality(String) COMMENT 'text - --label pairs: k=v,k2=v2, sorted by key',
    `tag` LowCardinality(String) COMMENT 'text - --tag, free text',
    `record_counter` UInt64 COMMENT 'count - xtcp2 column, not filled',
    `socket_fd` UInt64 COMMENT 'file descriptor - xtcp2 column, not filled',
    `netlinker_id` UInt64 COMMENT 'id - xtcp2 column, not filled',
    `dump_family` UInt32 COMMENT 'address family (2 = AF_INET, 10 = AF_INET6) - address family of the dump request',
    `event` Enum8('EVENT_POLL' = 0, 'EVENT_CLOSE' = 1) COMMENT 'what took the record (EVENT_POLL: a poll, EVENT_CLOSE: the kernel broadcast when the socket was destroyed) - set by the close-event reader, 0 = poll',
    `event_time_ns` Int64 COMMENT 'nanoseconds since the Unix epoch (UTC) - close records: when the broadcast was received, epoch ns, 0 for polls',
    `uplink1_ifname` String COMMENT 'text - xtcp2 column, not filled',
    `uplink1_nic_driver` String COMMENT 'text - xtcp2 column, not filled',
    `uplink1_nic_model` String COMMENT 'text - xtcp2 column, not filled',
    `uplink1_nic_pci_vendor` UInt32 COMMENT 'PCI id - xtcp2 column, not filled',
    `uplink1_nic_pci_device` UInt32 COMMENT 'PCI id - xtcp2 column, not filled',
    `uplink1_nic_bus_info` String COMMENT 'text - xtcp2 column, not filled',
    `uplink1_nic_speed_mbps` UInt32 COMMENT 'megabits per second - xtcp2 column, not filled',
    `uplink1_nic_fw_version` String COMMENT 'text - xtcp2 column, not filled',
    `uplink1_lldp_chassis_name` String COMMENT 'text - xtcp2 column, not filled',
    `uplink1_lldp_chassis_id` String COMMENT 'text - xtcp2 column, not filled',
    `uplink1_lldp_mgmt_ip` String COMMENT 'text - xtcp2 column, not filled',
    `uplink1_lldp_port_id` String COMMENT 'text - xtcp2 column, not filled',
    `uplink1_lldp_port_descr` String COMMENT 'text - xtcp2 column, not filled',
    `uplink2_ifname` String COMMENT 'text - xtcp2 column, not filled',
    `uplink2_nic_driver` String COMMENT 'text - xtcp2 column, not filled',
    `uplink2_nic_model` String COMMENT 'text - xtcp2 column, not filled',
    `uplink2_nic_pci_vendor` UInt32 COMMENT 'PCI id - xtcp2 column, not filled',
    `uplink2_nic_pci_device` UInt32 COMMENT 'PCI id - xtcp2 column, not filled',
    `uplink2_nic_bus_info` String COMMENT 'text - xtcp2 column, not filled',
    `uplink2_nic_speed_mbps` UInt32 COMMENT 'megabits per second - xtcp2 column, not filled',
    `uplink2_nic_fw_version` String COMMENT 'text - xtcp2 column, not filled',
    `uplink2_lldp_chassis_name` String COMMENT 'text - xtcp2 column, not filled',
    `uplink2_lldp_chassis_id` String COMMENT 'text - xtcp2 column, not filled',
    `uplink2_lldp_mgmt_ip` String COMMENT 'text - xtcp2 column, not filled',
    `uplink2_lldp_port_id` String COMMENT 'text - xtcp2 column, not filled',
    `uplink2_lldp_port_descr` String COMMENT 'text - xtcp2 column, not filled',
    `inet_diag_msg_family` UInt32 COMMENT 'address family (2 = AF_INET, 10 = AF_INET6)',
    `inet_diag_msg_state` UInt32 COMMENT 'TCP state (1 = ESTABLISHED ... 10 = LISTEN, 12 = NEW_SYN_RECV)',
    `inet_diag_msg_timer` UInt32 COMMENT 'timer kind (0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 zero window probe)',
    `inet_diag_msg_retrans` UInt32 COMMENT 'count',
    `inet_diag_msg_socket_source_port` UInt32 COMMENT 'port number - host order',
    `inet_diag_msg_socket_destination_port` UInt32 COMMENT 'port number - host order',
    `inet_diag_msg_socket_source` String COMMENT 'address bytes, network order: 4 (IPv4) or 16 (IPv6) - 4 B (AF_INET) or 16 B',
    `inet_diag_msg_socket_destination` String COMMENT 'address bytes, network order: 4 (IPv4) or 16 (IPv6) - 4 B (AF_INET) or 16 B',
    `inet_diag_msg_socket_interface` UInt32 COMMENT 'interface index (0: not bound)',
    `inet_diag_msg_socket_cookie` UInt64 COMMENT 'id',
    `inet_diag_msg_socket_dest_asn` UInt64 COMMENT 'AS number - xtcp2 column, not filled',
    `inet_diag_msg_socket_next_hop_asn` UInt64 COMMENT 'AS number - xtcp2 column, not filled',
    `inet_diag_msg_expires` UInt32 COMMENT 'milliseconds - ms',
    `inet_diag_msg_rqueue` UInt32 COMMENT 'bytes',
    `inet_diag_msg_wqueue` UInt32 COMMENT 'bytes',
    `inet_diag_msg_uid` UInt32 COMMENT 'user id',
    `inet_diag_msg_inode` UInt32 COMMENT 'inode number',
    `mem_info_rmem` UInt32 COMMENT 'bytes',
    `mem_info_wmem` UInt32 COMMENT 'bytes',
    `mem_info_fmem` UInt32 COMMENT 'bytes',
    `mem_info_tmem` UInt32 COMMENT 'bytes',
    `tcp_info_state` UInt32 COMMENT 'TCP state (1 = ESTABLISHED ... 10 = LISTEN, 12 = NEW_SYN_RECV)',
    `tcp_info_ca_state` UInt32 COMMENT 'congestion avoidance state (0 Open, 1 Disorder, 2 CWR, 3 Recovery, 4 Loss)',
    `tcp_info_retransmits` UInt32 COMMENT 'count',
    `tcp_info_probes` UInt32 COMMENT 'count',
    `tcp_info_backoff` UInt32 COMMENT 'count',
    `tcp_info_options` UInt32 COMMENT 'bitmask',
    `tcp_info_send_scale` UInt32 COMMENT 'window scale shift, bits',
    `tcp_info_rcv_scale` UInt32 COMMENT 'window scale shift, bits',
    `tcp_info_delivery_rate_app_limited` UInt32 COMMENT 'flag (0 or 1)',
    `tcp_info_fast_open_client_failed` UInt32 COMMENT 'flag (0 or 1)',
    `tcp_info_rto` UInt32 COMMENT 'microseconds',
    `tcp_info_ato` UInt32 COMMENT 'microseconds',
    `tcp_info_snd_mss` UInt32 COMMENT 'bytes',
    `tcp_info_rcv_mss` UInt32 COMMENT 'bytes',
    `tcp_info_unacked` UInt32 COMMENT 'segments',
    `tcp_info_sacked` UInt32 COMMENT 'segments',
    `tcp_info_lost` UInt32 COMMENT 'segments',
    `tcp_info_retrans` UInt32 COMMENT 'segments',
    `tcp_info_fackets` UInt32 COMMENT 'segments',
    `tcp_info_last_data_sent` UInt32 COMMENT 'milliseconds',
    `tcp_info_last_ack_sent` UInt32 COMMENT 'milliseconds',
    `tcp_info_last_data_recv` UInt32 COMMENT 'milliseconds',
    `tcp_info_last_ack_recv` UInt32 COMMENT 'milliseconds',
    `tcp_info_pmtu` UInt32 COMMENT 'bytes',
    `tcp_info_rcv_ssthresh` UInt32 COMMENT 'bytes',
    `tcp_info_rtt` UInt32 COMMENT 'microseconds',
    `tcp_info_rtt_var` UInt32 COMMENT 'microseconds',
    `tcp_info_snd_ssthresh` UInt32 COMMENT 'segments',
    `tcp_info_snd_cwnd` UInt32 COMMENT 'segments',
    `tcp_info_adv_mss` UInt32 COMMENT 'bytes',
    `tcp_info_reordering` UInt32 COMMENT 'segments',
    `tcp_info_rcv_rtt` UInt32 COMMENT 'microseconds',
    `tcp_info_rcv_space` UInt32 COMMENT 'bytes',
    `tcp_info_total_retrans` UInt32 COMMENT 'segments',
    `tcp_info_pacing_rate` UInt64 COMMENT 'bytes per second',
    `tcp_info_max_pacing_rate` UInt64 COMMENT 'bytes per second',
    `tcp_info_bytes_acked` UInt64 COMMENT 'bytes',
    `tcp_info_bytes_received` UInt64 COMMENT 'bytes',
    `tcp_info_segs_out` UInt32 COMMENT 'segments',
    `tcp_info_segs_in` UInt32 COMMENT 'segments',
    `tcp_info_not_sent_bytes` UInt32 COMMENT 'bytes',
    `tcp_info_min_rtt` UInt32 COMMENT 'microseconds',
    `tcp_info_data_segs_in` UInt32 COMMENT 'segments',
    `tcp_info_data_segs_out` UInt32 COMMENT 'segments',
    `tcp_info_delivery_rate` UInt64 COMMENT 'bytes per second',
    `tcp_info_busy_time` UInt64 COMMENT 'microseconds',
    `tcp_info_rwnd_limited` UInt64 COMMENT 'microseconds',
    `tcp_info_sndbuf_limited` UInt64 COMMENT 'microseconds',
    `tcp_info_delivered` UInt32 COMMENT 'segments',
    `tcp_info_delivered_ce` UInt32 COMMENT 'segments',
    `tcp_info_bytes_sent` UInt64 COMMENT 'bytes',
    `tcp_info_bytes_retrans` UInt64 COMMENT 'bytes',
    `tcp_info_dsack_dups` UInt32 COMMENT 'count',
    `tcp_info_reord_seen` UInt32 COMMENT 'count',
    `tcp_info_rcv_ooopack` UInt32 COMMENT 'packets',
    `tcp_info_snd_wnd` UInt32 COMMENT 'bytes',
    `tcp_info_rcv_wnd` UInt32 COMMENT 'bytes',
    `tcp_info_rehash` UInt32 COMMENT 'count',
    `tcp_info_total_rto` UInt32 COMMENT 'count',
    `tcp_info_total_rto_recoveries` UInt32 COMMENT 'count',
    `tcp_info_total_rto_time` UInt32 COMMENT 'milliseconds',
    `tcp_info_received_ce` UInt32 COMMENT 'packets - 6.18',
    `tcp_info_delivered_e1_bytes` UInt32 COMMENT 'bytes - 6.18',
    `tcp_info_delivered_e0_bytes` UInt32 COMMENT 'bytes - 6.18',
    `tcp_info_delivered_ce_bytes` UInt32 COMMENT 'bytes - 6.18',
    `tcp_info_received_e1_bytes` UInt32 COMMENT 'bytes - 6.18',
    `tcp_info_received_e0_bytes` UInt32 COMMENT 'bytes - 6.18',
    `tcp_info_received_ce_bytes` UInt32 COMMENT 'bytes - 6.18',
    `tcp_info_accecn_fail_mode` UInt32 COMMENT 'mode bits - 6.18 (u16), 7.0 (4 bits)',
    `tcp_info_accecn_opt_seen` UInt32 COMMENT 'mode bits - 6.18 (u16), 7.0 (2 bits)',
    `tcp_info_ecn_mode` UInt32 COMMENT 'mode bits - 7.0',
    `tcp_info_options2` UInt32 COMMENT 'bitmask - 7.0 (24 bits)',
    `tcp_info_len` UInt32 COMMENT 'bytes - INET_DIAG_INFO payload bytes, 0 = absent',
    `congestion_algorithm_string` LowCardinality(String) COMMENT 'text',
    `congestion_algorithm_enum` Enum8('CONGESTION_ALGORITHM_UNSPECIFIED' = 0, 'CONGESTION_ALGORITHM_CUBIC' = 1, 'CONGESTION_ALGORITHM_DCTCP' = 2, 'CONGESTION_ALGORITHM_VEGAS' = 3, 'CONGESTION_ALGORITHM_PRAGUE' = 4, 'CONGESTION_ALGORITHM_BBR1' = 5, 'CONGESTION_ALGORITHM_BBR2' = 6, 'CONGESTION_ALGORITHM_BBR3' = 7, 'CONGESTION_ALGORITHM_RENO' = 8, 'CONGESTION_ALGORITHM_OTHER' = 9) COMMENT 'enum',
    `type_of_service` UInt32 COMMENT 'header byte (DSCP and ECN bits) - INET_DIAG_TOS (5)',
    `traffic_class` UInt32 COMMENT 'header byte (DSCP and ECN bits) - INET_DIAG_TCLASS (6)',
    `sk_mem_info_rmem_alloc` UInt32 COMMENT 'bytes',
    `sk_mem_info_rcv_buf` UInt32 COMMENT 'bytes',
    `sk_mem_info_wmem_alloc` UInt32 COMMENT 'bytes',
    `sk_mem_info_snd_buf` UInt32 COMMENT 'bytes',
    `sk_mem_info_fwd_alloc` UInt32 COMMENT 'bytes',
    `sk_mem_info_wmem_queued` UInt32 COMMENT 'bytes',
    `sk_mem_info_optmem` UInt32 COMMENT 'bytes',
    `sk_mem_info_backlog` UInt32 COMMENT 'bytes - 3.6',
    `sk_mem_info_drops` UInt32 COMMENT 'packets - 4.6',
    `shutdown_state` UInt32 COMMENT 'bitmask (1 = receive shut down, 2 = send shut down) - INET_DIAG_SHUTDOWN (8)',
    `vegas_info_enabled` UInt32 COMMENT 'flag (0 or 1)',
    `vegas_info_rtt_cnt` UInt32 COMMENT 'count',
    `vegas_info_rtt` UInt32 COMMENT 'microseconds',
    `vegas_info_min_rtt` UInt32 COMMENT 'microseconds',
    `dctcp_info_enabled` UInt32 COMMENT 'flag (0 or 1)',
    `dctcp_info_ce_state` UInt32 COMMENT 'state',
    `dctcp_info_alpha` UInt32 COMMENT 'fraction of 1024',
    `dctcp_info_ab_ecn` UInt32 COMMENT 'bytes',
    `dctcp_info_ab_tot` UInt32 COMMENT 'bytes',
    `bbr_info_bw_lo` UInt32 COMMENT 'bytes per second (low / high 32 bits of one 64-bit value)',
    `bbr_info_bw_hi` UInt32 COMMENT 'bytes per second (low / high 32 bits of one 64-bit value)',
    `bbr_info_min_rtt` UInt32 COMMENT 'microseconds',
    `bbr_info_pacing_gain` UInt32 COMMENT 'gain, fixed point (256 = 1.0)',
    `bbr_info_cwnd_gain` UInt32 COMMENT 'gain, fixed point (256 = 1.0)',
    `class_id` UInt32 COMMENT 'id - INET_DIAG_CLASS_ID (17)',
    `sock_opt` UInt32 COMMENT 'bitmask - INET_DIAG_SOCKOPT (22), 2 B bitfield',
    `c_group` UInt64 COMMENT 'cgroup v2 id - INET_DIAG_CGROUP_ID (21)',
    `protocol` UInt32 COMMENT 'IP protocol number (6 = TCP) - INET_DIAG_PROTOCOL (10)',
    `skv6only` UInt32 COMMENT 'flag (0 or 1) - INET_DIAG_SKV6ONLY (11)',
    `mark` UInt32 COMMENT 'firewall mark - INET_DIAG_MARK (15), needs CAP_NET_ADMIN',
    `md5sig_keys` UInt32 COMMENT 'count - INET_DIAG_MD5SIG (18): number of keys',
    `attributes_present` UInt32 COMMENT 'bitmask'
)
ENGINE = Kafka
SETTINGS
    kafka_broker_list = 'kafka:9092',
    kafka_topic_list = 'xtcp',
    kafka_group_name = 'clickhouse_xtcp',
    kafka_format = 'ProtobufList',
    kafka_schema = 'xtcp_flat_record.proto:XtcpFlatRecord',
    kafka_num_consumers = 1,
    kafka_max_block_size = 1048576;

-- One view per schema_version: rows of another version stay in the Kafka table's
-- reach until a view for them is added (map renamed or retyped columns there).
CREATE MATERIALIZED VIEW IF NOT EXISTS xtcp.xtcp_records_kafka_v2_mv ON CLUSTER xtcp_cluster
TO xtcp.xtcp_records_local AS
SELECT * FROM xtcp.xtcp_records_kafka WHERE schema_version = 2;
