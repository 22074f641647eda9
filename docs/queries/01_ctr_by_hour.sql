-- CTR by hour for every ad over the last 24 hours (hour rollup; exact counts).
SELECT
    hour,
    ad_id,
    sum(impressions) AS n_impressions,
    sum(clicks) AS n_clicks,
    if(n_impressions = 0, 0, n_clicks / n_impressions) AS ctr
FROM ad_stats_hour
WHERE hour >= toStartOfHour(now() - 86400)
GROUP BY hour, ad_id
ORDER BY hour, ad_id;
