-- Unique viewers per ad and UTC day over the last 30 days. Merging the hourly uniq states gives the day's distinct viewers,
-- not the sum of hourly uniques (a viewer seen in two hours counts once).
SELECT
    toStartOfDay(hour) AS day,
    ad_id,
    uniqMerge(viewers) AS unique_viewers,
    sum(impressions) AS n_impressions
FROM ad_stats_hour
WHERE hour >= toStartOfDay(now() - 30 * 86400)
GROUP BY day, ad_id
ORDER BY day, ad_id;
