-- VAST 4.3 event types (issue 17), invalid traffic and enrichment columns (issue 18), valid-only rollups and the breakdown rollup.
--
-- RUN WITH INGEST STOPPED. 18.16 has no ALTER ... MODIFY QUERY, so the rollup views are dropped and created again; an insert into
-- events between the DROP and the CREATE would be stored but miss the rollups. Stop adtracker (or its ingest), run
-- `adtracker migrate`, start it again. Every statement is safe to run twice, so an interrupted migrate is finished by the next one:
-- `ADD COLUMN IF NOT EXISTS` does not parse on 18.16, so the runner (storage/clickhouse/migrate.go) checks system.columns itself and
-- runs the statement without IF NOT EXISTS only when the column is missing; current servers would also accept it as written.
--
-- events.type: the 16 new values only extend the Enum8 (existing values keep their numbers), which 18.16 and current servers apply
-- as a metadata change, even though type is in the sorting key: no part is rewritten and no mutation is created (checked by
-- TestMigration0003UpgradesStoredData on 18.16 and by scripts/chdb-check.js on the current engine).
--
-- New events columns and how rows stored before this file read: ivt = 'none' (valid; nothing was screened then), and device_type,
-- os, browser, country = '' (not enriched). Adding a column with a DEFAULT writes nothing either; old parts compute the default on
-- read.
--
-- Rollups after this file (ad_stats_minute, ad_stats_hour): every count that existed before counts valid traffic only
-- (ivt = 'none'), from the moment this file ran; old rollup rows counted every event, which was all valid by definition then, so
-- they keep their meaning and are not rewritten. New columns: events_total (every event, valid or not), viewables, not_viewables,
-- view_undetermined (valid only), invalid_impressions, invalid_clicks, invalid_events (ivt != 'none'). Old rollup rows read 0 in
-- the new columns: their events_total and viewability are unknown (there were no viewability events before this file).
--
-- Invariants of 0002 kept: counts are exact plain UInt64 summed by SummingMergeTree, and no row is ever all zeros, so a merge never
-- drops a row with its uniq state: every row a view writes from now on has events_total >= 1 (the 16 new types have no count
-- column of their own, and without events_total a minute of only progress events would be an all-zero row), and old rows count
-- at least one event of the 13 original types. Valid and invalid traffic go through two views per rollup because the viewers and
-- playback states must count valid traffic only: 18.16 types uniqIfState as AggregateFunction(uniqIf, ...), which the existing
-- AggregateFunction(uniq, String) column refuses, and current servers refuse uniqState over a Nullable argument for the same
-- reason; a WHERE in the view keeps the column types unchanged. 18.16 fills no missing column of a view's target, so each view
-- names every column: the valid view writes zero invalid counts, the invalid view zero valid counts and empty states
-- (arrayReduce over an empty array, typed as the columns on both servers), which merge as nothing. An insert without invalid
-- events writes no part through the invalid view.
--
-- Users upgrading with data: docs/sql.md has one-off backfill statements for ad_breakdown_hour (from events, run once with ingest
-- stopped right after migrate, as for 0002). Existing events carry ivt 'none' and empty dimensions, so the backfilled breakdown
-- shows them under value '' (unknown) for device_type, os, browser and country, and 'none' for ivt.
ALTER TABLE events MODIFY COLUMN type Enum8('impression' = 1, 'click' = 2, 'start' = 3, 'first_quartile' = 4, 'midpoint' = 5,
    'third_quartile' = 6, 'complete' = 7, 'skip' = 8, 'pause' = 9, 'resume' = 10,
    'mute' = 11, 'unmute' = 12, 'error' = 13, 'creative_view' = 14, 'loaded' = 15, 'progress' = 16,
    'close' = 17, 'close_linear' = 18, 'rewind' = 19, 'fullscreen' = 20, 'exit_fullscreen' = 21,
    'player_expand' = 22, 'player_collapse' = 23, 'other_ad_interaction' = 24, 'not_used' = 25,
    'viewable' = 26, 'not_viewable' = 27, 'view_undetermined' = 28, 'verification_not_executed' = 29);

ALTER TABLE events ADD COLUMN IF NOT EXISTS ivt Enum8('none' = 0, 'crawler' = 1, 'prefetch' = 2, 'deny_ip' = 3, 'deny_user_agent' = 4, 'duplicate_click' = 5) DEFAULT 'none';
ALTER TABLE events ADD COLUMN IF NOT EXISTS device_type String DEFAULT '';
ALTER TABLE events ADD COLUMN IF NOT EXISTS os String DEFAULT '';
ALTER TABLE events ADD COLUMN IF NOT EXISTS browser String DEFAULT '';
ALTER TABLE events ADD COLUMN IF NOT EXISTS country String DEFAULT '';

ALTER TABLE ad_stats_minute ADD COLUMN IF NOT EXISTS events_total UInt64;
ALTER TABLE ad_stats_minute ADD COLUMN IF NOT EXISTS viewables UInt64;
ALTER TABLE ad_stats_minute ADD COLUMN IF NOT EXISTS not_viewables UInt64;
ALTER TABLE ad_stats_minute ADD COLUMN IF NOT EXISTS view_undetermined UInt64;
ALTER TABLE ad_stats_minute ADD COLUMN IF NOT EXISTS invalid_impressions UInt64;
ALTER TABLE ad_stats_minute ADD COLUMN IF NOT EXISTS invalid_clicks UInt64;
ALTER TABLE ad_stats_minute ADD COLUMN IF NOT EXISTS invalid_events UInt64;

ALTER TABLE ad_stats_hour ADD COLUMN IF NOT EXISTS events_total UInt64;
ALTER TABLE ad_stats_hour ADD COLUMN IF NOT EXISTS viewables UInt64;
ALTER TABLE ad_stats_hour ADD COLUMN IF NOT EXISTS not_viewables UInt64;
ALTER TABLE ad_stats_hour ADD COLUMN IF NOT EXISTS view_undetermined UInt64;
ALTER TABLE ad_stats_hour ADD COLUMN IF NOT EXISTS invalid_impressions UInt64;
ALTER TABLE ad_stats_hour ADD COLUMN IF NOT EXISTS invalid_clicks UInt64;
ALTER TABLE ad_stats_hour ADD COLUMN IF NOT EXISTS invalid_events UInt64;

-- One row per (ad, hour, dimension, value) with that value's counts, so a breakdown reads a few rows per ad and hour instead of
-- scanning events. dimension is one of device_type, os, browser, country (valid traffic only: an invalid event has no place in a
-- device split) and ivt (every event, value = the reason name; 'none' is the valid traffic). For each dimension, the values of an
-- ad and hour sum to that hour's totals: valid totals for the four enrichment dimensions, every event for ivt. value '' means
-- unknown or not enriched. Every row counts at least one event (events >= 1), so SummingMergeTree never drops one. Strings, not
-- Enum8 or LowCardinality: LowCardinality needs a setting on 18.16, and the values are open-ended (countries, browser families).
CREATE TABLE IF NOT EXISTS ad_breakdown_hour
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
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (ad_id, hour, dimension, value)
SETTINGS index_granularity = 1024;

-- The views. A failing view fails the insert into events (the pipeline would spill), so the expressions stay total: no division,
-- no parse. The valid views are 0002's bodies with WHERE ivt = 'none' and the new valid counts.
DROP TABLE IF EXISTS ad_stats_minute_mv;

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
    quantilesTDigestIfState(0.5, 0.95)(playback_ms, playback_ms > 0) AS playback_ms_quantiles,
    count() AS events_total,
    countIf(type = 'viewable') AS viewables,
    countIf(type = 'not_viewable') AS not_viewables,
    countIf(type = 'view_undetermined') AS view_undetermined,
    toUInt64(0) AS invalid_impressions,
    toUInt64(0) AS invalid_clicks,
    toUInt64(0) AS invalid_events
FROM events
WHERE ivt = 'none'
GROUP BY ad_id, minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS ad_stats_minute_invalid_mv TO ad_stats_minute AS
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
FROM events
WHERE ivt != 'none'
GROUP BY ad_id, minute;

DROP TABLE IF EXISTS ad_stats_hour_mv;

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
    quantilesTDigestIfState(0.5, 0.95)(playback_ms, playback_ms > 0) AS playback_ms_quantiles,
    count() AS events_total,
    countIf(type = 'viewable') AS viewables,
    countIf(type = 'not_viewable') AS not_viewables,
    countIf(type = 'view_undetermined') AS view_undetermined,
    toUInt64(0) AS invalid_impressions,
    toUInt64(0) AS invalid_clicks,
    toUInt64(0) AS invalid_events
FROM events
WHERE ivt = 'none'
GROUP BY ad_id, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS ad_stats_hour_invalid_mv TO ad_stats_hour AS
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
FROM events
WHERE ivt != 'none'
GROUP BY ad_id, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS ad_breakdown_hour_mv TO ad_breakdown_hour AS
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
FROM events
ARRAY JOIN if(ivt = 'none',
              [('device_type', device_type), ('os', os), ('browser', browser), ('country', country), ('ivt', 'none')],
              [('ivt', toString(ivt))]) AS pair
GROUP BY ad_id, hour, dimension, value;
