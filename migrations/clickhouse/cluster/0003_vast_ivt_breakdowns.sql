-- Cluster form of migrations/clickhouse/0003_vast_ivt_breakdowns.sql: read its header (RUN WITH INGEST STOPPED; what old rows read;
-- the invariants). The same columns, views and breakdown rollup, with Replicated*MergeTree _local tables behind Distributed tables
-- under the single-node names. ALTER ... ON CLUSTER on a replicated table is applied once per shard through ZooKeeper and reaches
-- both replicas; do not restart a replica while migrate runs (18.16's DDL worker can wedge on an ALTER whose replica went away).
ALTER TABLE ${DATABASE}.events_local ON CLUSTER ${CLUSTER} MODIFY COLUMN type Enum8('impression' = 1, 'click' = 2, 'start' = 3, 'first_quartile' = 4, 'midpoint' = 5,
    'third_quartile' = 6, 'complete' = 7, 'skip' = 8, 'pause' = 9, 'resume' = 10,
    'mute' = 11, 'unmute' = 12, 'error' = 13, 'creative_view' = 14, 'loaded' = 15, 'progress' = 16,
    'close' = 17, 'close_linear' = 18, 'rewind' = 19, 'fullscreen' = 20, 'exit_fullscreen' = 21,
    'player_expand' = 22, 'player_collapse' = 23, 'other_ad_interaction' = 24, 'not_used' = 25,
    'viewable' = 26, 'not_viewable' = 27, 'view_undetermined' = 28, 'verification_not_executed' = 29);

ALTER TABLE ${DATABASE}.events_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS ivt Enum8('none' = 0, 'crawler' = 1, 'prefetch' = 2, 'deny_ip' = 3, 'deny_user_agent' = 4, 'duplicate_click' = 5) DEFAULT 'none';
ALTER TABLE ${DATABASE}.events_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS device_type String DEFAULT '';
ALTER TABLE ${DATABASE}.events_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS os String DEFAULT '';
ALTER TABLE ${DATABASE}.events_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS browser String DEFAULT '';
ALTER TABLE ${DATABASE}.events_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS country String DEFAULT '';

-- 18.16 refuses ALTER ... ON CLUSTER on a Distributed table over replicated shards ("Table events isn't replicated, but shard
-- #1 is replicated"), so the Distributed tables are created again over their altered _local tables. They hold no data: the sink
-- inserts with insert_distributed_sync = 1.
DROP TABLE IF EXISTS ${DATABASE}.events ON CLUSTER ${CLUSTER};

CREATE TABLE IF NOT EXISTS ${DATABASE}.events ON CLUSTER ${CLUSTER} AS ${DATABASE}.events_local
ENGINE = Distributed(${CLUSTER}, ${DATABASE}, events_local, cityHash64(ad_id));

ALTER TABLE ${DATABASE}.ad_stats_minute_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS events_total UInt64;
ALTER TABLE ${DATABASE}.ad_stats_minute_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS viewables UInt64;
ALTER TABLE ${DATABASE}.ad_stats_minute_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS not_viewables UInt64;
ALTER TABLE ${DATABASE}.ad_stats_minute_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS view_undetermined UInt64;
ALTER TABLE ${DATABASE}.ad_stats_minute_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS invalid_impressions UInt64;
ALTER TABLE ${DATABASE}.ad_stats_minute_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS invalid_clicks UInt64;
ALTER TABLE ${DATABASE}.ad_stats_minute_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS invalid_events UInt64;

DROP TABLE IF EXISTS ${DATABASE}.ad_stats_minute ON CLUSTER ${CLUSTER};

CREATE TABLE IF NOT EXISTS ${DATABASE}.ad_stats_minute ON CLUSTER ${CLUSTER} AS ${DATABASE}.ad_stats_minute_local
ENGINE = Distributed(${CLUSTER}, ${DATABASE}, ad_stats_minute_local, cityHash64(ad_id));

ALTER TABLE ${DATABASE}.ad_stats_hour_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS events_total UInt64;
ALTER TABLE ${DATABASE}.ad_stats_hour_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS viewables UInt64;
ALTER TABLE ${DATABASE}.ad_stats_hour_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS not_viewables UInt64;
ALTER TABLE ${DATABASE}.ad_stats_hour_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS view_undetermined UInt64;
ALTER TABLE ${DATABASE}.ad_stats_hour_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS invalid_impressions UInt64;
ALTER TABLE ${DATABASE}.ad_stats_hour_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS invalid_clicks UInt64;
ALTER TABLE ${DATABASE}.ad_stats_hour_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS invalid_events UInt64;

DROP TABLE IF EXISTS ${DATABASE}.ad_stats_hour ON CLUSTER ${CLUSTER};

CREATE TABLE IF NOT EXISTS ${DATABASE}.ad_stats_hour ON CLUSTER ${CLUSTER} AS ${DATABASE}.ad_stats_hour_local
ENGINE = Distributed(${CLUSTER}, ${DATABASE}, ad_stats_hour_local, cityHash64(ad_id));

CREATE TABLE IF NOT EXISTS ${DATABASE}.ad_breakdown_hour_local ON CLUSTER ${CLUSTER}
(
    ad_id         UInt64,
    hour          DateTime('UTC'),
    dimension     String,
    value         String,
    events        UInt64,
    impressions   UInt64,
    clicks        UInt64,
    starts        UInt64,
    completes     UInt64,
    viewables     UInt64,
    not_viewables UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/${DATABASE}/ad_breakdown_hour_local', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (ad_id, hour, dimension, value)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS ${DATABASE}.ad_breakdown_hour ON CLUSTER ${CLUSTER} AS ${DATABASE}.ad_breakdown_hour_local
ENGINE = Distributed(${CLUSTER}, ${DATABASE}, ad_breakdown_hour_local, cityHash64(ad_id));

-- Views: the single-node file's bodies, reading this shard's events_local and writing this shard's rollups.
DROP TABLE IF EXISTS ${DATABASE}.ad_stats_minute_mv ON CLUSTER ${CLUSTER};

CREATE MATERIALIZED VIEW IF NOT EXISTS ${DATABASE}.ad_stats_minute_mv ON CLUSTER ${CLUSTER} TO ${DATABASE}.ad_stats_minute_local AS
SELECT
    ad_id,
    toStartOfMinute(event_time) AS minute,
    countIf(type = 'impression') AS impressions,
    countIf(type = 'click') AS clicks,
    countIf(type = 'start') AS starts,
    countIf(type = 'first_quartile') AS first_quartiles,
    countIf(type = 'midpoint') AS midpoints,
    countIf(type = 'third_quartile') AS third_quartiles,
    countIf(type = 'complete') AS completes,
    countIf(type = 'skip') AS skips,
    countIf(type = 'pause') AS pauses,
    countIf(type = 'resume') AS resumes,
    countIf(type = 'mute') AS mutes,
    countIf(type = 'unmute') AS unmutes,
    countIf(type = 'error') AS errors,
    sum(toUInt64(playback_ms)) AS playback_ms_sum,
    countIf(playback_ms > 0) AS playback_count,
    uniqState(if(viewer_id != '', viewer_id, concat('ip:', IPv6NumToString(ip)))) AS viewers,
    quantilesTDigestIfState(0.5, 0.95)(playback_ms, playback_ms > 0) AS playback_ms_quantiles,
    count() AS events_total,
    countIf(type = 'viewable') AS viewables,
    countIf(type = 'not_viewable') AS not_viewables,
    countIf(type = 'view_undetermined') AS view_undetermined,
    toUInt64(0) AS invalid_impressions,
    toUInt64(0) AS invalid_clicks,
    toUInt64(0) AS invalid_events
FROM ${DATABASE}.events_local
WHERE ivt = 'none'
GROUP BY ad_id, minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${DATABASE}.ad_stats_minute_invalid_mv ON CLUSTER ${CLUSTER} TO ${DATABASE}.ad_stats_minute_local AS
SELECT
    ad_id,
    toStartOfMinute(event_time) AS minute,
    toUInt64(0) AS impressions,
    toUInt64(0) AS clicks,
    toUInt64(0) AS starts,
    toUInt64(0) AS first_quartiles,
    toUInt64(0) AS midpoints,
    toUInt64(0) AS third_quartiles,
    toUInt64(0) AS completes,
    toUInt64(0) AS skips,
    toUInt64(0) AS pauses,
    toUInt64(0) AS resumes,
    toUInt64(0) AS mutes,
    toUInt64(0) AS unmutes,
    toUInt64(0) AS errors,
    toUInt64(0) AS playback_ms_sum,
    toUInt64(0) AS playback_count,
    arrayReduce('uniqState', emptyArrayString()) AS viewers,
    arrayReduce('quantilesTDigestIfState(0.5, 0.95)', emptyArrayUInt32(), emptyArrayUInt8()) AS playback_ms_quantiles,
    count() AS events_total,
    toUInt64(0) AS viewables,
    toUInt64(0) AS not_viewables,
    toUInt64(0) AS view_undetermined,
    countIf(type = 'impression') AS invalid_impressions,
    countIf(type = 'click') AS invalid_clicks,
    count() AS invalid_events
FROM ${DATABASE}.events_local
WHERE ivt != 'none'
GROUP BY ad_id, minute;

DROP TABLE IF EXISTS ${DATABASE}.ad_stats_hour_mv ON CLUSTER ${CLUSTER};

CREATE MATERIALIZED VIEW IF NOT EXISTS ${DATABASE}.ad_stats_hour_mv ON CLUSTER ${CLUSTER} TO ${DATABASE}.ad_stats_hour_local AS
SELECT
    ad_id,
    toStartOfHour(event_time) AS hour,
    countIf(type = 'impression') AS impressions,
    countIf(type = 'click') AS clicks,
    countIf(type = 'start') AS starts,
    countIf(type = 'first_quartile') AS first_quartiles,
    countIf(type = 'midpoint') AS midpoints,
    countIf(type = 'third_quartile') AS third_quartiles,
    countIf(type = 'complete') AS completes,
    countIf(type = 'skip') AS skips,
    countIf(type = 'pause') AS pauses,
    countIf(type = 'resume') AS resumes,
    countIf(type = 'mute') AS mutes,
    countIf(type = 'unmute') AS unmutes,
    countIf(type = 'error') AS errors,
    sum(toUInt64(playback_ms)) AS playback_ms_sum,
    countIf(playback_ms > 0) AS playback_count,
    uniqState(if(viewer_id != '', viewer_id, concat('ip:', IPv6NumToString(ip)))) AS viewers,
    quantilesTDigestIfState(0.5, 0.95)(playback_ms, playback_ms > 0) AS playback_ms_quantiles,
    count() AS events_total,
    countIf(type = 'viewable') AS viewables,
    countIf(type = 'not_viewable') AS not_viewables,
    countIf(type = 'view_undetermined') AS view_undetermined,
    toUInt64(0) AS invalid_impressions,
    toUInt64(0) AS invalid_clicks,
    toUInt64(0) AS invalid_events
FROM ${DATABASE}.events_local
WHERE ivt = 'none'
GROUP BY ad_id, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${DATABASE}.ad_stats_hour_invalid_mv ON CLUSTER ${CLUSTER} TO ${DATABASE}.ad_stats_hour_local AS
SELECT
    ad_id,
    toStartOfHour(event_time) AS hour,
    toUInt64(0) AS impressions,
    toUInt64(0) AS clicks,
    toUInt64(0) AS starts,
    toUInt64(0) AS first_quartiles,
    toUInt64(0) AS midpoints,
    toUInt64(0) AS third_quartiles,
    toUInt64(0) AS completes,
    toUInt64(0) AS skips,
    toUInt64(0) AS pauses,
    toUInt64(0) AS resumes,
    toUInt64(0) AS mutes,
    toUInt64(0) AS unmutes,
    toUInt64(0) AS errors,
    toUInt64(0) AS playback_ms_sum,
    toUInt64(0) AS playback_count,
    arrayReduce('uniqState', emptyArrayString()) AS viewers,
    arrayReduce('quantilesTDigestIfState(0.5, 0.95)', emptyArrayUInt32(), emptyArrayUInt8()) AS playback_ms_quantiles,
    count() AS events_total,
    toUInt64(0) AS viewables,
    toUInt64(0) AS not_viewables,
    toUInt64(0) AS view_undetermined,
    countIf(type = 'impression') AS invalid_impressions,
    countIf(type = 'click') AS invalid_clicks,
    count() AS invalid_events
FROM ${DATABASE}.events_local
WHERE ivt != 'none'
GROUP BY ad_id, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${DATABASE}.ad_breakdown_hour_mv ON CLUSTER ${CLUSTER} TO ${DATABASE}.ad_breakdown_hour_local AS
SELECT
    ad_id,
    toStartOfHour(event_time) AS hour,
    pair.1 AS dimension,
    pair.2 AS value,
    count() AS events,
    countIf(type = 'impression') AS impressions,
    countIf(type = 'click') AS clicks,
    countIf(type = 'start') AS starts,
    countIf(type = 'complete') AS completes,
    countIf(type = 'viewable') AS viewables,
    countIf(type = 'not_viewable') AS not_viewables
FROM ${DATABASE}.events_local
ARRAY JOIN if(ivt = 'none',
              [('device_type', device_type), ('os', os), ('browser', browser), ('country', country), ('ivt', 'none')],
              [('ivt', toString(ivt))]) AS pair
GROUP BY ad_id, hour, dimension, value;
