-- Per-ad rollups of events by minute and by hour, filled by materialized views on every insert into events. The analytics API, the
-- Grafana dashboards and analysts read these instead of scanning events (docs/sql.md says how to query them).
--
-- Engine: SummingMergeTree, not AggregatingMergeTree with countIfState columns. Counts are plain UInt64 that merges add up, so they
-- are exact and an analyst reads them with sum(clicks) instead of countMerge(...); a UInt64 is also smaller and cheaper to merge than
-- a count state. SummingMergeTree merges the two AggregateFunction columns with their own function (as AggregatingMergeTree would),
-- which 18.16 does too. Every row counts at least one event of some type (all 13 types have a column), so SummingMergeTree never
-- drops a row as "all zeros" and takes its uniq state with it. Rows are merged in the background at any time: always read with
-- GROUP BY and sum()/-Merge, never assume one row per key.
--
-- viewers: uniq over viewer_id, or over the address ('ip:' || IPv6 text) when the event has no viewer_id, so anonymous pixel
-- traffic still counts. uniq is approximate (about 1-2 % error above ~65k values, exact below).
-- playback: only events that carry a playback position (playback_ms > 0) count, so impressions (always 0) do not drag the figures
-- down. The quantile column's type names quantilesTDigestIf because that is what quantilesTDigestIfState produces; 18.16 refuses to
-- store it in a plain quantilesTDigest column. Read it with quantilesTDigestIfMerge(0.5, 0.95)(playback_ms_quantiles).
--
-- Users upgrading with events already stored: the views see only inserts made after this file ran. docs/sql.md has the one-off
-- backfill statements (run them once, with adtracker stopped, right after `adtracker migrate`).
--
-- Small index granules: a per-ad read pulls whole granules, and deserialising thousands of other ads' uniq and t-digest states
-- cost more than the rows asked for (measured: 8192-row granules made a one-ad query read 32k rows instead of 1.8k, 3x slower).
-- The primary index stays small (one mark per 1024 / 256 rows of a table that is already ~100x smaller than events).
--
-- Runs on 18.16 and current servers: no TTL, no SimpleAggregateFunction, no LowCardinality. Retention: none here (see docs/sql.md).
CREATE TABLE IF NOT EXISTS ad_stats_minute
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
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMMDD(minute)
ORDER BY (ad_id, minute)
SETTINGS index_granularity = 1024;

-- Same columns by hour; fed from events by its own view (exact, and no dependency between the views' insert order).
CREATE TABLE IF NOT EXISTS ad_stats_hour
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
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (ad_id, hour)
SETTINGS index_granularity = 256;

-- A failing view fails the insert into events (the pipeline would spill), so the expressions below stay total: no division, no parse.
CREATE MATERIALIZED VIEW IF NOT EXISTS ad_stats_minute_mv TO ad_stats_minute AS
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
FROM events
GROUP BY ad_id, minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS ad_stats_hour_mv TO ad_stats_hour AS
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
FROM events
GROUP BY ad_id, hour;
