-- Valid traffic of each ad by device class over the last 24 hours (whole hours): impressions, clicks, CTR and completion
-- rate per class. '' is unknown (no recognised user agent, or stored before enrichment). Replace 'device_type' with 'os',
-- 'browser' or 'country' for the other splits; the values of each sum to the ad's valid totals in ad_stats_hour.
SELECT
    ad_id,
    if(value = '', 'unknown', value) AS device,
    sum(impressions) AS n_impressions,
    sum(clicks) AS n_clicks,
    if(n_impressions = 0, 0, n_clicks / n_impressions) AS ctr,
    sum(starts) AS n_starts,
    if(n_starts = 0, 0, sum(completes) / n_starts) AS completion_rate
FROM ad_breakdown_hour
WHERE hour >= toStartOfHour(now() - 86400) AND dimension = 'device_type'
GROUP BY ad_id, device
ORDER BY ad_id, n_impressions DESC, device;
