-- Completion funnel per ad over the last 7 days: how many viewers reach each quartile, as counts and as a share of starts.
SELECT
    ad_id,
    sum(impressions) AS n_impressions,
    sum(starts) AS n_starts,
    sum(first_quartiles) AS n_first_quartile,
    sum(midpoints) AS n_midpoint,
    sum(third_quartiles) AS n_third_quartile,
    sum(completes) AS n_completes,
    if(n_starts = 0, 0, n_first_quartile / n_starts) AS first_quartile_rate,
    if(n_starts = 0, 0, n_midpoint / n_starts) AS midpoint_rate,
    if(n_starts = 0, 0, n_third_quartile / n_starts) AS third_quartile_rate,
    if(n_starts = 0, 0, n_completes / n_starts) AS completion_rate
FROM ad_stats_hour
WHERE hour >= toStartOfHour(now() - 7 * 86400)
GROUP BY ad_id
ORDER BY n_impressions DESC, ad_id;
