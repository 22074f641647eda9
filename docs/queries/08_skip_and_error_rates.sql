-- Skip and error rates per ad over the last 7 days, as shares of starts.
SELECT
    ad_id,
    sum(starts) AS n_starts,
    sum(skips) AS n_skips,
    sum(errors) AS n_errors,
    if(n_starts = 0, 0, n_skips / n_starts) AS skip_rate,
    if(n_starts = 0, 0, n_errors / n_starts) AS error_rate
FROM ad_stats_hour
WHERE hour >= toStartOfHour(now() - 7 * 86400)
GROUP BY ad_id
ORDER BY skip_rate DESC, ad_id;
