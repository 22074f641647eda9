-- Exact totals for an arbitrary window [from_t, to_t) on minute boundaries, the way the API computes them: the whole hours from the
-- hour rollup, the partial hours at either edge from the minute rollup. Edit the two times in both halves (18.16 does not carry a
-- WITH into subqueries, so each half has its own).
SELECT
    ad_id,
    sum(impressions) AS n_impressions,
    sum(clicks) AS n_clicks,
    sum(completes) AS n_completes,
    uniqMerge(viewers) AS unique_viewers
FROM
(
    WITH
        toDateTime('2025-04-21 09:17:00', 'UTC') AS from_t,
        toDateTime('2025-04-21 14:43:00', 'UTC') AS to_t,
        toStartOfHour(from_t) + if(toStartOfHour(from_t) = from_t, 0, 3600) AS from_h,
        toStartOfHour(to_t) AS to_h
    SELECT ad_id, impressions, clicks, completes, viewers
    FROM ad_stats_hour
    WHERE hour >= from_h AND hour < to_h
    UNION ALL
    WITH
        toDateTime('2025-04-21 09:17:00', 'UTC') AS from_t,
        toDateTime('2025-04-21 14:43:00', 'UTC') AS to_t,
        toStartOfHour(from_t) + if(toStartOfHour(from_t) = from_t, 0, 3600) AS from_h,
        toStartOfHour(to_t) AS to_h
    SELECT ad_id, impressions, clicks, completes, viewers
    FROM ad_stats_minute
    WHERE if(from_h < to_h,
             (minute >= from_t AND minute < from_h) OR (minute >= to_h AND minute < to_t),
             minute >= from_t AND minute < to_t)
)
GROUP BY ad_id
ORDER BY ad_id;
