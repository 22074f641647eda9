-- Events per minute by type over the last hour, all ads together, one row per minute and type (minute rollup, unpivoted).
SELECT
    minute,
    kind.1 AS type,
    sum(kind.2) AS events
FROM ad_stats_minute
ARRAY JOIN
    [('impression', impressions), ('click', clicks), ('start', starts), ('first_quartile', first_quartiles),
     ('midpoint', midpoints), ('third_quartile', third_quartiles), ('complete', completes), ('skip', skips),
     ('pause', pauses), ('resume', resumes), ('mute', mutes), ('unmute', unmutes), ('error', errors)] AS kind
WHERE minute >= toStartOfMinute(now() - 3600)
GROUP BY minute, type
HAVING events > 0
ORDER BY minute, type;
