package query

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Dimension is what a breakdown splits an ad's traffic by: a column of the ad_breakdown_hour rollup (migration 0003).
type Dimension string

// The dimensions. DeviceType, OS, Browser and Country split valid traffic; IVT splits every event by its invalid-traffic reason
// ("none" is the valid traffic), so its values sum to valid plus invalid traffic.
const (
	DeviceType Dimension = "device_type"
	OS         Dimension = "os"
	Browser    Dimension = "browser"
	Country    Dimension = "country"
	IVT        Dimension = "ivt"
)

// Dimensions lists the accepted by values.
func Dimensions() []Dimension { return []Dimension{DeviceType, OS, Browser, Country, IVT} }

// ParseDimension returns the dimension named s, or a *ParamError naming by.
func ParseDimension(s string) (Dimension, error) {
	for _, d := range Dimensions() {
		if string(d) == s {
			return d, nil
		}
	}
	names := make([]string, 0, 5)
	for _, d := range Dimensions() {
		names = append(names, string(d))
	}
	if s == "" {
		return "", &ParamError{Field: "by", Msg: "by is required: one of " + strings.Join(names, ", ")}
	}
	return "", &ParamError{Field: "by", Msg: fmt.Sprintf("unknown dimension %q: by must be one of %s", s, strings.Join(names, ", "))}
}

// Limits of a breakdown's answer. Values beyond the limit are not dropped: they are summed into Other, so the values of an answer
// always add up to its totals. Per dimension an ad has at most a few hundred values anyway (6 device classes, 6 reasons, the UA
// parser's OS and browser families, ISO countries), which is what one query reads before the limit applies.
const (
	DefaultBreakdownValues = 50
	MaxBreakdownValues     = 1000
	// DefaultTopBreakdownValues is how many values each ad of a top list shows with by= (the rest in other).
	DefaultTopBreakdownValues = 10
)

// Counts are the exact counts of one breakdown value (or of the totals); the rates derive from them.
type Counts struct {
	Events       uint64
	Impressions  uint64
	Clicks       uint64
	Starts       uint64
	Completes    uint64
	Viewables    uint64
	NotViewables uint64
}

func (c *Counts) add(o Counts) {
	c.Events += o.Events
	c.Impressions += o.Impressions
	c.Clicks += o.Clicks
	c.Starts += o.Starts
	c.Completes += o.Completes
	c.Viewables += o.Viewables
	c.NotViewables += o.NotViewables
}

// Value is one value of a dimension ("" is unknown: not enriched, or stored before enrichment existed) and its counts.
type Value struct {
	Value string
	Counts
}

// Other is what a breakdown folds past its limit: how many values, and their summed counts.
type Other struct {
	Values int
	Counts
}

// Breakdown is one ad's traffic over [From, To) split by a dimension. Values are ordered by impressions, then events, descending,
// then by value; Totals is the sum of Values and Other. From and To are whole hours (the rollup's grain): the requested range
// rounded outwards.
type Breakdown struct {
	AdID   uint64
	By     Dimension
	From   time.Time
	To     time.Time
	Totals Counts
	Values []Value
	Other  *Other
}

// hourRange rounds r outwards to whole hours.
func hourRange(r Range) Range {
	from := r.From.UTC().Truncate(time.Hour)
	to := r.To.UTC().Truncate(time.Hour)
	if to.Before(r.To) {
		to = to.Add(time.Hour)
	}
	return Range{From: from, To: to}
}

const breakdownAggregates = `sum(events) AS n_events, sum(impressions) AS n_impressions, sum(clicks) AS n_clicks,
 sum(starts) AS n_starts, sum(completes) AS n_completes, sum(viewables) AS n_viewables, sum(not_viewables) AS n_not_viewables`

// BreakdownOf returns ad's traffic over r split by by, at most limit values (1..MaxBreakdownValues; 0 for
// DefaultBreakdownValues) and the rest in Other. It refuses what AnalyticsFields refuses, and an unknown ad like it.
func (s *Service) BreakdownOf(ctx context.Context, adID uint64, r Range, by Dimension, limit int) (Breakdown, error) {
	if _, err := ParseDimension(string(by)); err != nil {
		return Breakdown{}, err
	}
	if limit == 0 {
		limit = DefaultBreakdownValues
	}
	if limit < 1 || limit > MaxBreakdownValues {
		return Breakdown{}, errValues("limit")
	}
	if err := s.Check(r); err != nil {
		return Breakdown{}, err
	}
	if err := s.known(adID, "id"); err != nil {
		return Breakdown{}, err
	}
	all, err := s.breakdowns(ctx, []uint64{adID}, hourRange(r), by, limit)
	if err != nil {
		return Breakdown{}, err
	}
	return all[adID], nil
}

func errValues(field string) *ParamError {
	return &ParamError{Field: field, Msg: fmt.Sprintf("%s must be an integer between 1 and %d", field, MaxBreakdownValues)}
}

// breakdowns reads the breakdown of every ad in ids over r (whole hours) in one query and folds each past limit values. Every
// ad of ids gets an entry, empty when it had no traffic.
func (s *Service) breakdowns(ctx context.Context, ids []uint64, r Range, by Dimension, limit int) (map[uint64]Breakdown, error) {
	var b builder
	b.sql.WriteString("SELECT ad_id, value, ")
	b.sql.WriteString(breakdownAggregates)
	b.sql.WriteString(" FROM ")
	b.sql.WriteString(s.table("ad_breakdown_hour"))
	// PREWHERE on the primary key (ad_id, hour, dimension, value), as source() does for the other rollups.
	b.sql.WriteString(" PREWHERE ")
	b.adIDsIn(ids)
	b.sql.WriteString(" AND hour >= toDateTime(?) AND hour < toDateTime(?) AND dimension = ?")
	b.args = append(b.args, r.From.Unix(), r.To.Unix(), string(by))
	b.sql.WriteString(" GROUP BY ad_id, value ORDER BY ad_id, n_impressions DESC, n_events DESC, value")
	rows, err := s.DB.Query(ctx, b.sql.String(), b.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[uint64]Breakdown, len(ids))
	for _, id := range ids {
		out[id] = Breakdown{AdID: id, By: by, From: r.From, To: r.To, Values: []Value{}}
	}
	for rows.Next() {
		var id uint64
		var v Value
		c := &v.Counts
		if err := rows.Scan(&id, &v.Value, &c.Events, &c.Impressions, &c.Clicks, &c.Starts, &c.Completes, &c.Viewables, &c.NotViewables); err != nil {
			return nil, err
		}
		bd := out[id]
		bd.Totals.add(v.Counts)
		if len(bd.Values) < limit {
			bd.Values = append(bd.Values, v)
		} else {
			if bd.Other == nil {
				bd.Other = &Other{}
			}
			bd.Other.Values++
			bd.Other.add(v.Counts)
		}
		out[id] = bd
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// TopBreakdowns returns the breakdown by by of each ad of a top list (ids) over r, with at most values values each
// (DefaultTopBreakdownValues when 0); the rest of each ad's values is in its Other.
func (s *Service) TopBreakdowns(ctx context.Context, ids []uint64, r Range, by Dimension, values int) (map[uint64]Breakdown, error) {
	if values == 0 {
		values = DefaultTopBreakdownValues
	}
	if len(ids) == 0 {
		return map[uint64]Breakdown{}, nil
	}
	return s.breakdowns(ctx, ids, hourRange(r), by, values)
}
