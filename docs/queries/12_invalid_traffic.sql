-- Invalid traffic per ad over the last 24 hours: valid and invalid impressions and clicks, the IVT rate (invalid / all
-- impressions; NULL without impressions), and the events screened out by reason, from the hourly breakdown (every event
-- counts under its ivt reason there; 'none' is the valid traffic).
SELECT
    s.ad_id,
    s.n_impressions,
    s.n_invalid_impressions,
    if(s.n_impressions + s.n_invalid_impressions = 0, NULL,
       s.n_invalid_impressions / (s.n_impressions + s.n_invalid_impressions)) AS ivt_rate,
    s.n_clicks,
    s.n_invalid_clicks,
    r.reasons
FROM
(
    SELECT ad_id, sum(impressions) AS n_impressions, sum(invalid_impressions) AS n_invalid_impressions,
           sum(clicks) AS n_clicks, sum(invalid_clicks) AS n_invalid_clicks
    FROM ad_stats_hour
    WHERE hour >= toStartOfHour(now() - 86400)
    GROUP BY ad_id
) AS s
ANY LEFT JOIN
(
    SELECT ad_id, groupArray((reason, n_events)) AS reasons
    FROM
    (
        SELECT ad_id, value AS reason, sum(events) AS n_events
        FROM ad_breakdown_hour
        WHERE hour >= toStartOfHour(now() - 86400) AND dimension = 'ivt' AND value != 'none'
        GROUP BY ad_id, reason
        ORDER BY ad_id, n_events DESC, reason
    )
    GROUP BY ad_id
) AS r USING ad_id
ORDER BY ivt_rate DESC, s.ad_id;
