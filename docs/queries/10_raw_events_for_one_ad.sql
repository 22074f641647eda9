-- Drill-down into raw events (fine for a short window of one ad: the sorting key is ad_id, event_time): the last 100 events of
-- ad 1 in the past hour, with the address as text.
SELECT
    event_time,
    type,
    playback_ms,
    viewer_id,
    IPv6NumToString(ip) AS ip,
    user_agent
FROM events
WHERE ad_id = 1 AND event_time >= now() - 3600
ORDER BY event_time DESC
LIMIT 100;
