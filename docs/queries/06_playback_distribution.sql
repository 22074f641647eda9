-- Playback per ad over the last 7 days: exact average (sum / count) and t-digest median and 95th percentile, in seconds.
-- Only events that report a playback position (playback_ms > 0) count.
SELECT
    ad_id,
    sum(playback_count) AS n_with_playback,
    if(n_with_playback = 0, 0, sum(playback_ms_sum) / n_with_playback / 1000) AS avg_seconds,
    quantilesTDigestIfMerge(0.5, 0.95)(playback_ms_quantiles) AS q,
    if(n_with_playback = 0, 0, q[1] / 1000) AS p50_seconds,
    if(n_with_playback = 0, 0, q[2] / 1000) AS p95_seconds
FROM ad_stats_hour
WHERE hour >= toStartOfHour(now() - 7 * 86400)
GROUP BY ad_id
ORDER BY ad_id;
