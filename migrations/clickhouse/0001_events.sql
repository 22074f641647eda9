-- Raw events, one row per accepted event. Runs on ClickHouse 18.16 and current servers:
-- no TTL, no IPv6 type, no LowCardinality, no DateTime64 (see docs/sql.md).
--
-- ORDER BY (ad_id, event_time): per-ad time-range reads touch only that ad's granules, and
-- the replayer's "which of these event_ids are stored" check filters by ad_id and time.
-- PARTITION BY day keeps parts small and lets operators drop whole days.
-- ip is the 16-byte IPv6 form (IPv4 as ::ffff:a.b.c.d): IPv6NumToString(ip) shows it.
CREATE TABLE IF NOT EXISTS events
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
ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (ad_id, event_time, type)
SETTINGS index_granularity = 8192;
