-- Distinct viewers across all ads over the last 7 days: the states of every ad merge into one set, so a viewer who saw three ads
-- counts once. Compare with the sum of the per-ad figures to see the overlap.
SELECT
    uniqMerge(ad_viewers) AS viewers_all_ads,
    sum(per_ad) AS sum_of_per_ad_viewers
FROM
(
    SELECT ad_id, uniqMergeState(viewers) AS ad_viewers, uniqMerge(viewers) AS per_ad
    FROM ad_stats_hour
    WHERE hour >= toStartOfHour(now() - 7 * 86400)
    GROUP BY ad_id
);
