package event

import (
	"encoding/binary"
	"testing"
	"time"
)

// An id carries the time it is stamped with in its first 48 bits (UUIDv7), version 7 and the RFC 4122 variant, and ids stamped
// with the same millisecond differ in both 64-bit halves.
func TestIDsNextAt(t *testing.T) {
	g := NewIDs()
	at := time.Date(2026, 12, 6, 22, 5, 1, 234_000_000, time.UTC)
	a, b := g.NextAt(at), g.NextAt(at)
	for _, u := range []UUID{a, b} {
		if ms := binary.BigEndian.Uint64(u[0:8]) >> 16; ms != uint64(at.UnixMilli()) {
			t.Fatalf("%x: timestamp %d ms, want %d", u, ms, at.UnixMilli())
		}
		if u[6]>>4 != 7 || u[8]>>6 != 2 {
			t.Fatalf("%x: version %d variant %b", u, u[6]>>4, u[8]>>6)
		}
	}
	if a == b || binary.BigEndian.Uint64(a[0:8]) == binary.BigEndian.Uint64(b[0:8]) ||
		binary.BigEndian.Uint64(a[8:16]) == binary.BigEndian.Uint64(b[8:16]) {
		t.Fatalf("two ids of one millisecond share a half: %x %x", a, b)
	}
	before := time.Now().UnixMilli()
	n := g.Next()
	if ms := int64(binary.BigEndian.Uint64(n[0:8]) >> 16); ms < before || ms > time.Now().UnixMilli() {
		t.Fatalf("Next stamped %d ms, not now (%d)", ms, before)
	}
}

// BenchmarkIDs is an id stamped with a clock read of its own (Next) against one stamped with a time the caller already has
// (NextAt: the handlers pass the request's receive time).
func BenchmarkIDs(b *testing.B) {
	g := NewIDs()
	b.Run("clock", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = g.Next()
		}
	})
	b.Run("given", func(b *testing.B) {
		at := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			_ = g.NextAt(at)
		}
	})
}
