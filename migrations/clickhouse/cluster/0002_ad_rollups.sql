-- Cluster form of migrations/clickhouse/0002_ad_rollups.sql (docs/scaling.md). Each rollup is a ReplicatedSummingMergeTree per
-- shard (<name>_local) behind a Distributed table with the single-node name, and each view reads its shard's events_local and
-- writes its shard's rollup: a view fires only on the replica that received the insert, and the rollup part it writes is then
-- replicated like any other, so both replicas end up with the same rollup rows without the view running twice.
-- Reads through the Distributed rollups give single-node answers as long as every query aggregates (sum / -Merge with GROUP BY),
-- which docs/sql.md already requires: an ad's rows are on one shard, and a GROUP BY over several shards merges states correctly
-- anyway. Column lists, keys and view bodies are the single-node file's, unchanged.
CREATE TABLE IF NOT EXISTS ${DATABASE}.ad_stats_minute_local ON CLUSTER ${CLUSTER}
(
    ad_id                 UInt64,
    minute                DateTime('UTC'),
    impressions           UInt64,
    clicks                UInt64,
    starts                UInt64,
    first_quartiles       UInt64,
    midpoints             UInt64,
    third_quartiles       UInt64,
    completes             UInt64,
    skips                 UInt64,
    pauses                UInt64,
    resumes               UInt64,
    mutes                 UInt64,
    unmutes               UInt64,
    errors                UInt64,
    playback_ms_sum       UInt64,
    playback_count        UInt64,
    viewers               AggregateFunction(uniq, String),
    playback_ms_quantiles AggregateFunction(quantilesTDigestIf(0.5, 0.95), UInt32, UInt8)
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/${DATABASE}/ad_stats_minute_local', '{replica}')
PARTITION BY toYYYYMMDD(minute)
ORDER BY (ad_id, minute)
SETTINGS index_granularity = 1024;

-- Same columns by hour; fed from events_local by its own view (exact, and no dependency between the views' insert order).
CREATE TABLE IF NOT EXISTS ${DATABASE}.ad_stats_hour_local ON CLUSTER ${CLUSTER}
(
    ad_id                 UInt64,
    hour                  DateTime('UTC'),
    impressions           UInt64,
    clicks                UInt64,
    starts                UInt64,
    first_quartiles       UInt64,
    midpoints             UInt64,
    third_quartiles       UInt64,
    completes             UInt64,
    skips                 UInt64,
    pauses                UInt64,
    resumes               UInt64,
    mutes                 UInt64,
    unmutes               UInt64,
    errors                UInt64,
    playback_ms_sum       UInt64,
    playback_count        UInt64,
    viewers               AggregateFunction(uniq, String),
    playback_ms_quantiles AggregateFunction(quantilesTDigestIf(0.5, 0.95), UInt32, UInt8)
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/${DATABASE}/ad_stats_hour_local', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (ad_id, hour)
SETTINGS index_granularity = 256;

-- A failing view fails the insert into events (the pipeline would spill), so the expressions below stay total: no division, no parse.
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
    quantilesTDigestIfState(0.5, 0.95)(playback_ms, playback_ms > 0) AS playback_ms_quantiles
FROM ${DATABASE}.events_local
GROUP BY ad_id, minute;

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
    quantilesTDigestIfState(0.5, 0.95)(playback_ms, playback_ms > 0) AS playback_ms_quantiles
FROM ${DATABASE}.events_local
GROUP BY ad_id, hour;

-- Reads (the analytics API, Grafana, analysts) use these names, as on a single node. The sharding key only matters for inserts
-- made through them (a backfill): it keeps an ad's rollup rows on the shard that holds its events.
CREATE TABLE IF NOT EXISTS ${DATABASE}.ad_stats_minute ON CLUSTER ${CLUSTER} AS ${DATABASE}.ad_stats_minute_local
ENGINE = Distributed(${CLUSTER}, ${DATABASE}, ad_stats_minute_local, cityHash64(ad_id));

CREATE TABLE IF NOT EXISTS ${DATABASE}.ad_stats_hour ON CLUSTER ${CLUSTER} AS ${DATABASE}.ad_stats_hour_local
ENGINE = Distributed(${CLUSTER}, ${DATABASE}, ad_stats_hour_local, cityHash64(ad_id));
