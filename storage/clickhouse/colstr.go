package clickhouse

import (
	"sync/atomic"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// The driver builds a new block for every INSERT (PrepareBatch), so each INSERT's String columns grew from nothing by doubling
// to one chunk's size: most of the garbage a batch left behind, and with it most of what drove the collector in batch runs
// (BENCHMARKS.md, issue 20 after session 12). The driver's only hook into how a String column starts is a process-wide
// provider called with the column's name, for result blocks as well as insert blocks. So the sink records, right before each
// PrepareBatch, what its first chunk holds per String column (setStrHints), and the provider starts a column of that name at
// that size. A read of a column with one of these names would start presized too: that costs memory once per block and never
// correctness, and adtracker's own reads select none of them (events are read by event_id; the breakdowns name their column
// "value"). The buffers are not pooled: the provider cannot know when the driver is done with a column.

// insertStrColumns are the String columns of insertEvents, in the order of the values (*columns).strings returns.
var insertStrColumns = [...]string{"user_agent", "viewer_id", "session_id", "device_type", "os", "browser", "country"}

// strHint is the size a String column of an INSERT starts at: the bytes and rows of the last first chunk the sink sent.
type strHint struct{ bytes, rows atomic.Int64 }

// strHints holds one hint per name of insertStrColumns. The map is never written after init, so the provider reads it
// without a lock from any goroutine.
var strHints = func() map[string]*strHint {
	m := make(map[string]*strHint, len(insertStrColumns))
	for _, name := range insertStrColumns {
		m[name] = new(strHint)
	}
	return m
}()

func init() { column.WithColStrProvider(presizedColStr) }

// presizedColStr is the driver's ColStrProvider: an empty column, with room for the hinted bytes and rows when name is one of
// insertStrColumns and an INSERT has set its hint.
func presizedColStr(name string) proto.ColStr {
	h := strHints[name]
	if h == nil {
		return proto.ColStr{}
	}
	n, rows := h.bytes.Load(), h.rows.Load()
	if rows == 0 {
		return proto.ColStr{}
	}
	return proto.ColStr{Buf: make([]byte, 0, n), Pos: make([]proto.Position, 0, rows)}
}

// setStrHints records the first chunk of an INSERT, c, as the size its String columns start at, with an eighth more bytes
// for later chunks of longer strings. Concurrent INSERTs overwrite each other's hints; a column that starts too small grows
// as it did before.
func setStrHints(c *columns) {
	rows := int64(len(c.ids))
	for i, col := range c.strings() {
		n := 0
		for _, s := range col {
			n += len(s)
		}
		h := strHints[insertStrColumns[i]]
		h.bytes.Store(int64(n + n/8))
		h.rows.Store(rows)
	}
}
