-- Cluster form of migrations/clickhouse/0001_events.sql (docs/scaling.md): the same columns, sorting key and partitioning in a
-- ReplicatedMergeTree per shard (events_local), and a Distributed table named events over it, so every reader and the sink keep
-- using the name `events`. ${CLUSTER} and ${DATABASE} are replaced by the migration runner (18.16 has no {database} macro and no
-- macros in ON CLUSTER); {shard} and {replica} are the servers' own macros and stay as they are.
--
-- Sharding key cityHash64(ad_id): one ad's events live on one shard, so per-ad reads touch one shard's granules and the rollup
-- rows of an ad are built from all its events on one server. For a UInt64, cityHash64(x) = intHash64(x), which is the same on
-- 18.16 and 26.x and is five lines of Go, should the sink ever pick the shard itself.
CREATE TABLE IF NOT EXISTS ${DATABASE}.events_local ON CLUSTER ${CLUSTER}
(
    event_id     UUID,
    type         Enum8('impression' = 1, 'click' = 2, 'start' = 3, 'first_quartile' = 4, 'midpoint' = 5,
                       'third_quartile' = 6, 'complete' = 7, 'skip' = 8, 'pause' = 9, 'resume' = 10,
                       'mute' = 11, 'unmute' = 12, 'error' = 13),
    ad_id        UInt64,
    event_time   DateTime('UTC'),
    receive_time DateTime('UTC'),
    ip           FixedString(16),
    user_agent   String,
    playback_ms  UInt32,
    viewer_id    String,
    session_id   String
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/${DATABASE}/events_local', '{replica}')
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (ad_id, event_time, type)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS ${DATABASE}.events ON CLUSTER ${CLUSTER} AS ${DATABASE}.events_local
ENGINE = Distributed(${CLUSTER}, ${DATABASE}, events_local, cityHash64(ad_id));
