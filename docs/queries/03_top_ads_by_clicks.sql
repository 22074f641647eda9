-- Top 10 ads by clicks over the last 24 hours, with CTR and unique viewers (uniq is approximate, ~1-2 % above 65k).
SELECT
    ad_id,
    sum(clicks) AS n_clicks,
    sum(impressions) AS n_impressions,
    if(n_impressions = 0, 0, n_clicks / n_impressions) AS ctr,
    uniqMerge(viewers) AS unique_viewers
FROM ad_stats_minute
WHERE minute >= toStartOfMinute(now() - 86400)
GROUP BY ad_id
ORDER BY n_clicks DESC, ad_id
LIMIT 10;
