-- Many hosts -> Kafka -> ClickHouse: each host runs
--     python -m xtcp_uring --sink kafka://kafka:9092/xtcp
-- and the server reads the topic with a Kafka engine table and a materialized view into
-- the MergeTree table of xtcp_records.sql (create that first, with {db} = xtcp, {ttl} empty
-- or a TTL clause, then rollups.sql: its views roll up whatever reaches xtcp_records, the
-- Kafka engine's inserts included). A sharded cluster: cluster/xtcp_cluster.sql.
--
-- Message format (checked by tests/integration/test_sinks_kafka.py against chDB):
--   one Kafka message = one ClickHouse ProtobufList message
--                     = varint(length of Envelope) + Envelope { repeated XtcpFlatRecord row = 1 }
--   ClickHouse reads exactly one length-delimited Envelope per message. Kafka engine support
--   for ProtobufList needs ClickHouse >= 26.3.1 (earlier versions fail from the second message
--   of a poll with "Unexpected end of ProtobufList message", ClickHouse issue #78746).
--   Key: the sending host's name. Header schema_version: the record schema's version.
--
-- The .proto: copy proto/xtcp_flat_record.proto into the server's format_schema_path
-- (default /var/lib/clickhouse/format_schemas/). Columns are matched to fields by name, so the
-- Kafka table takes the record table's columns (AS xtcp.xtcp_records): no third copy of them.

CREATE TABLE IF NOT EXISTS xtcp.xtcp_records_kafka AS xtcp.xtcp_records
ENGINE = Kafka
SETTINGS
    kafka_broker_list = 'kafka:9092',
    kafka_topic_list = 'xtcp',
    kafka_group_name = 'clickhouse_xtcp',
    kafka_format = 'ProtobufList',
    kafka_schema = 'xtcp_flat_record.proto:XtcpFlatRecord',
    kafka_num_consumers = 1,
    kafka_max_block_size = 1048576;

-- Moves each block the Kafka table reads into the MergeTree table. A message that does not
-- parse stops the consumer with an error in the server log; to skip such messages instead
-- (each one is a whole poll batch), add kafka_skip_broken_messages = N above.
CREATE MATERIALIZED VIEW IF NOT EXISTS xtcp.xtcp_records_kafka_mv TO xtcp.xtcp_records AS
SELECT * FROM xtcp.xtcp_records_kafka;
