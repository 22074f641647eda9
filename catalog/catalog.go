// Package catalog keeps an in-memory snapshot of the ad catalogue for ingest validation, the click redirect and VAST rendering, and serves the /ads API.
//
// Lookups never touch Postgres: the snapshot is an immutable map swapped atomically, loaded at
// start, refreshed when the ads trigger sends NOTIFY, and fully reloaded every RefreshInterval
// as a safety net. When Postgres is down the last snapshot stays in use (Age grows) and loading
// is retried with backoff.
//
// What ingest does with an ad's status (Entry.Accepts):
//   - active: events are recorded.
//   - paused: events are still recorded, because players cache ad markup and report views of
//     an ad for a while after it was paused; dropping them would under-count delivered views.
//   - archived: events are rejected (422 "ad is archived") and /c/{id} answers 404. Archiving
//     is how an operator retires an ad for good, so late traffic for it is noise, not
//     delivery; the row stays in Postgres so past events keep their ad.
//   - unknown id: rejected (422), nothing stored.
package catalog

import (
	"context"
	"iter"
	"sync/atomic"
	"time"

	"github.com/adtracker/adtracker/storage/postgres"
	"go.uber.org/zap"
)

// Status is an ad's status in the snapshot: a byte, so the ingest path compares an integer
// rather than a string.
type Status uint8

// Statuses, matching ads.status in Postgres.
const (
	StatusUnknown Status = iota
	StatusActive
	StatusPaused
	StatusArchived
)

// ParseStatus maps the Postgres spelling to a Status (StatusUnknown when unrecognised).
func ParseStatus(s string) Status {
	switch s {
	case postgres.StatusActive:
		return StatusActive
	case postgres.StatusPaused:
		return StatusPaused
	case postgres.StatusArchived:
		return StatusArchived
	}
	return StatusUnknown
}

// String returns the Postgres spelling.
func (s Status) String() string {
	switch s {
	case StatusActive:
		return postgres.StatusActive
	case StatusPaused:
		return postgres.StatusPaused
	case StatusArchived:
		return postgres.StatusArchived
	}
	return "unknown"
}

// Entry is what the catalogue knows about one ad.
type Entry struct {
	Status    Status
	TargetURL string
	// Creative is what the VAST renderer needs; behind a pointer so the Entry that ingest copies per event stays small. Never nil
	// in a snapshot built by NewSnapshot.
	Creative *Creative
}

// Creative is the part of an ad the VAST renderer reads (package vast). Version is the ads.version the fields come from: a
// rendering cached for one version is valid until the version changes.
type Creative struct {
	Version         int64
	Name            string
	VideoURL        string // "" means the ad has no video and cannot be served as VAST
	DurationSeconds int
	MimeType        string
	Width, Height   int
	BitrateKbps     int // 0: not stated
	Delivery        string
	Weight          int // share of GET /vast answers among active ads; 0 = never chosen there
}

// Accepts reports whether ingest records events for the ad: active and paused ads yes,
// archived ones no (see the package comment for why).
func (e Entry) Accepts() bool { return e.Status == StatusActive || e.Status == StatusPaused }

// Snapshot is an immutable view of the catalogue at one moment. Never modify it after
// NewSnapshot: readers hold it without locks.
type Snapshot struct {
	entries  map[uint64]Entry
	loadedAt time.Time
}

// NewSnapshot builds a snapshot from rows loaded at loadedAt.
func NewSnapshot(rows []postgres.SnapshotRow, loadedAt time.Time) *Snapshot {
	m := make(map[uint64]Entry, len(rows))
	for _, r := range rows {
		if r.ID <= 0 {
			continue
		}
		m[uint64(r.ID)] = Entry{Status: ParseStatus(r.Status), TargetURL: r.TargetURL, Creative: &Creative{
			Version: r.Version, Name: r.Name, VideoURL: r.VideoURL, DurationSeconds: r.DurationSeconds, MimeType: r.VideoMimeType,
			Width: r.VideoWidth, Height: r.VideoHeight, BitrateKbps: r.VideoBitrateKbps, Delivery: r.VideoDelivery, Weight: r.Weight,
		}}
	}
	return &Snapshot{entries: m, loadedAt: loadedAt}
}

// All yields every ad of the snapshot, archived included, in no particular order.
func (s *Snapshot) All() iter.Seq2[uint64, Entry] {
	return func(yield func(uint64, Entry) bool) {
		for id, e := range s.entries {
			if !yield(id, e) {
				return
			}
		}
	}
}

// Lookup returns the entry for id.
func (s *Snapshot) Lookup(id uint64) (Entry, bool) {
	e, ok := s.entries[id]
	return e, ok
}

// Len is the number of ads in the snapshot, archived included.
func (s *Snapshot) Len() int { return len(s.entries) }

// Source is what the catalogue needs from Postgres; *postgres.DB implements it, tests use a fake.
type Source interface {
	AllForSnapshot(ctx context.Context) ([]postgres.SnapshotRow, error)
	// Listen calls fn with each NOTIFY payload on channel until ctx ends, and with "" after
	// every (re)subscribe; see postgres.DB.Listen.
	Listen(ctx context.Context, channel string, fn func(payload string)) error
}

// Config tunes a Catalog; zero values take the defaults.
type Config struct {
	// RefreshInterval is the period of the safety-net full reload (default 30 s). NOTIFY makes
	// changes visible sooner; this bounds staleness if a notification is ever lost.
	RefreshInterval time.Duration
	// Debounce is how long a NOTIFY waits for more before the reload (default 50 ms).
	Debounce time.Duration
	// RetryMin is the first retry delay after a failed load (default 500 ms); it doubles up
	// to RefreshInterval.
	RetryMin time.Duration
	// LoadTimeout bounds one load query (default 10 s).
	LoadTimeout time.Duration
	// Channel is the NOTIFY channel (default postgres.AdsChannel).
	Channel string
	Logger  *zap.Logger
}

func (c Config) withDefaults() Config {
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = 30 * time.Second
	}
	if c.Debounce <= 0 {
		c.Debounce = 50 * time.Millisecond
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 500 * time.Millisecond
	}
	if c.LoadTimeout <= 0 {
		c.LoadTimeout = 10 * time.Second
	}
	if c.Channel == "" {
		c.Channel = postgres.AdsChannel
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Catalog serves lookups from the current snapshot and keeps it fresh while Run runs.
type Catalog struct {
	src       Source
	cfg       Config
	snap      atomic.Pointer[Snapshot]
	listening atomic.Bool
	notify    chan struct{} // capacity 1: a pending reload request; more NOTIFYs coalesce into it
}

// New returns a catalogue over src. It is empty (Ready false) until the first load.
func New(src Source, cfg Config) *Catalog {
	return &Catalog{src: src, cfg: cfg.withDefaults(), notify: make(chan struct{}, 1)}
}

// Lookup returns the entry for ad id. It takes no locks and does not allocate: it is called
// for every ingested event.
func (c *Catalog) Lookup(id uint64) (Entry, bool) {
	s := c.snap.Load()
	if s == nil {
		return Entry{}, false
	}
	return s.Lookup(id)
}

// Known reports whether ad id is in the catalogue, archived included (an archived ad's analytics stay readable). Before the first
// snapshot it reports true: not loaded yet is not "no such ad". The analytics API uses it to answer 404 for an ad that never existed.
func (c *Catalog) Known(id uint64) bool {
	s := c.snap.Load()
	if s == nil {
		return true
	}
	_, ok := s.Lookup(id)
	return ok
}

// Ready reports whether a snapshot has been loaded at least once.
func (c *Catalog) Ready() bool { return c.snap.Load() != nil }

// Listening reports whether the NOTIFY listener has subscribed at least once and is still
// running. The listener reconnects by itself, so this stays true through a Postgres outage;
// Age is what shows the snapshot going stale. While false, changes arrive only with the
// periodic reload.
func (c *Catalog) Listening() bool { return c.listening.Load() }

// Age is the time since the last successful load, or 0 before the first one (see Ready).
func (c *Catalog) Age() time.Duration {
	s := c.snap.Load()
	if s == nil {
		return 0
	}
	return time.Since(s.loadedAt)
}

// Size is the number of ads in the current snapshot, archived included.
func (c *Catalog) Size() int {
	s := c.snap.Load()
	if s == nil {
		return 0
	}
	return s.Len()
}

// Snapshot returns the current snapshot (nil before the first load).
func (c *Catalog) Snapshot() *Snapshot { return c.snap.Load() }

// Reload loads the whole catalogue and swaps it in. On error the current snapshot stays.
func (c *Catalog) Reload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.LoadTimeout)
	defer cancel()
	rows, err := c.src.AllForSnapshot(ctx)
	if err != nil {
		return err
	}
	c.snap.Store(NewSnapshot(rows, time.Now()))
	return nil
}

// Run loads the catalogue and keeps it fresh until ctx ends; it returns ctx.Err().
//
// A NOTIFY triggers a debounced full reload rather than a per-id fetch and copy-on-write.
// The map must be copied for any change anyway (readers hold it without locks), so a per-id
// fetch saves only one small indexed scan of a table of at most thousands of rows; in return
// a full reload coalesces bursts (a bulk edit sends one NOTIFY per row) into one query, cannot
// apply two changes of one ad out of order, and is the same code path as the safety-net
// reload, so there is one way for the snapshot to change.
func (c *Catalog) Run(ctx context.Context) error {
	log := c.cfg.Logger
	listenDone := make(chan struct{})
	go func() {
		defer close(listenDone)
		err := c.src.Listen(ctx, c.cfg.Channel, func(payload string) {
			if payload == "" {
				// (Re)subscribed: anything sent while we were away is lost, and the reload
				// below picks it up.
				c.listening.Store(true)
			}
			select {
			case c.notify <- struct{}{}:
			default:
			}
		})
		c.listening.Store(false)
		if err != nil && ctx.Err() == nil {
			log.Error("catalogue NOTIFY listener stopped; relying on periodic reloads", zap.Error(err))
		}
	}()
	defer func() { <-listenDone }()

	refresh := time.NewTicker(c.cfg.RefreshInterval)
	defer refresh.Stop()
	// One timer serves both the debounce and the retry after a failure: either way the next
	// step is "reload at time T", and the earliest request wins (a NOTIFY during a long retry
	// backoff means Postgres is back, so it should not wait for the backoff).
	next := time.NewTimer(0) // load at once on start
	defer next.Stop()
	pending, due := true, time.Now()
	arm := func(d time.Duration) {
		at := time.Now().Add(d)
		if pending && !at.Before(due) {
			return
		}
		next.Reset(d) // Go ≥ 1.23 timers: Reset never delivers a stale tick
		pending, due = true, at
	}
	retry := c.cfg.RetryMin
	failing := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.notify:
			arm(c.cfg.Debounce)
		case <-refresh.C:
			arm(0)
		case <-next.C:
			pending = false
			err := c.Reload(ctx)
			if err == nil {
				if failing {
					log.Info("ad catalogue reloaded after failures", zap.Int("ads", c.Size()))
				}
				failing, retry = false, c.cfg.RetryMin
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !failing {
				// Once per outage: the retries below would otherwise log every few seconds.
				log.Warn("ad catalogue reload failed; serving the last snapshot and retrying",
					zap.Bool("ready", c.Ready()), zap.Duration("snapshot_age", c.Age()),
					zap.Bool("postgres_unavailable", postgres.IsUnavailable(err)), zap.Error(err))
				failing = true
			}
			arm(retry)
			retry = min(retry*2, c.cfg.RefreshInterval)
		}
	}
}
