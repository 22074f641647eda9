package clickhouse

import (
	"context"
	"runtime"
	"testing"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/google/uuid"
)

func TestPresizedColStrFollowsTheLastFirstChunk(t *testing.T) {
	if c := presizedColStr("value"); cap(c.Buf) != 0 || cap(c.Pos) != 0 {
		t.Fatalf("a column no INSERT names starts with room for %d bytes, %d rows", cap(c.Buf), cap(c.Pos))
	}
	const ua = "Mozilla/5.0 (X11; Linux x86_64)"
	var c columns
	for range 3 {
		c.ids = append(c.ids, uuid.UUID{})
		c.uas = append(c.uas, ua)
		c.viewers = append(c.viewers, "v1")
		c.sessions = append(c.sessions, "")
		c.devices = append(c.devices, "desktop")
		c.oses = append(c.oses, "Linux")
		c.browsers = append(c.browsers, "Firefox")
		c.countries = append(c.countries, "DE")
	}
	setStrHints(&c)
	for name, want := range map[string]int{"user_agent": 3*len(ua) + 3*len(ua)/8, "viewer_id": 6, "session_id": 0, "device_type": 21 + 2,
		"os": 15 + 1, "browser": 21 + 2, "country": 6} {
		got := presizedColStr(name)
		if cap(got.Buf) != want || cap(got.Pos) != 3 || len(got.Buf) != 0 || len(got.Pos) != 0 {
			t.Errorf("%s starts with len %d cap %d bytes, len %d cap %d rows; want room for %d bytes and 3 rows", name, len(got.Buf),
				cap(got.Buf), len(got.Pos), cap(got.Pos), want)
		}
	}
}

// allocatedByInsert is what one Sink.Insert allocates in the whole process, the least of three.
func allocatedByInsert(t *testing.T, s *Sink, n int) uint64 {
	t.Helper()
	b := randomBatch(n)
	least := ^uint64(0)
	var ms runtime.MemStats
	for range 3 {
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		if err := s.Insert(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&ms)
		least = min(least, ms.TotalAlloc-before)
	}
	return least
}

// Against the real server: with the provider installed the INSERT's String columns start at the first chunk's size instead
// of growing to it, which shows as fewer bytes allocated per insert. One chunk of 2048 rows with 200-byte user agents grows its
// user_agent column through doublings to 512 KiB (~1 MiB allocated on the way); presized it takes ~460 KB once.
func TestInsertStringColumnsStartPresized(t *testing.T) {
	s := NewSink(migrated(t))
	presized := allocatedByInsert(t, s, insertChunk)
	column.WithColStrProvider(func(string) proto.ColStr { return proto.ColStr{} })
	grown := allocatedByInsert(t, s, insertChunk)
	column.WithColStrProvider(presizedColStr)
	t.Logf("one insert of %d rows allocated %d bytes presized, %d grown", insertChunk, presized, grown)
	if grown < presized+400<<10 {
		t.Fatalf("presized String columns saved %d bytes of %d per insert, want at least 400 KiB", int64(grown)-int64(presized), grown)
	}
}
