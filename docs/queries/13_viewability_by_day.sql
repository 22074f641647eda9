-- Viewability per ad and day over the last 7 days (valid traffic): viewable, measurable (viewable + not viewable) and
-- undetermined outcomes of VAST ViewableImpression, and the rate viewable / measurable (NULL when nothing was measured).
SELECT
    toDate(hour) AS day,
    ad_id,
    sum(viewables) AS n_viewable,
    sum(viewables) + sum(not_viewables) AS n_measurable,
    sum(view_undetermined) AS n_undetermined,
    if(n_measurable = 0, NULL, n_viewable / n_measurable) AS viewability_rate
FROM ad_stats_hour
WHERE hour >= toStartOfDay(now() - 7 * 86400)
GROUP BY day, ad_id
ORDER BY day, ad_id;
