package uacache

import (
	"sync"
	"testing"
)

func TestGetPut(t *testing.T) {
	c := New(1000)
	if c.Len() != 1024 {
		t.Fatalf("%d slots, want 1024", c.Len())
	}
	a, b := c.Hash([]byte("Mozilla/5.0 a")), c.Hash([]byte("Mozilla/5.0 b"))
	if a == b || a == 0 || c.Hash([]byte("Mozilla/5.0 a")) != a {
		t.Fatalf("hashes %x %x", a, b)
	}
	if _, ok := c.Get(a); ok {
		t.Fatal("hit in an empty cache")
	}
	c.Put(a, 7)
	if v, ok := c.Get(a); !ok || v != 7 {
		t.Fatalf("got %d %v", v, ok)
	}
	// A verdict of 0 is a value like any other.
	c.Put(b, 0)
	if v, ok := c.Get(b); !ok || v != 0 {
		t.Fatalf("zero verdict: %d %v", v, ok)
	}
	// Keys sharing a bucket: Ways of them stay; one more replaces one of them.
	c = New(Ways) // one bucket
	var hs []uint64
	for i := 0; i <= Ways; i++ {
		hs = append(hs, c.Hash([]byte{byte(i)}))
	}
	for i, h := range hs[:Ways] {
		c.Put(h, uint64(i))
	}
	for i, h := range hs[:Ways] {
		if v, ok := c.Get(h); !ok || v != uint64(i) {
			t.Fatalf("key %d of %d in one bucket: %d %v", i, Ways, v, ok)
		}
	}
	c.Put(hs[Ways], 99)
	kept := 0
	for _, h := range hs[:Ways] {
		if _, ok := c.Get(h); ok {
			kept++
		}
	}
	if v, ok := c.Get(hs[Ways]); !ok || v != 99 || kept != Ways-1 {
		t.Fatalf("after one more key: new %d %v, %d old kept", v, ok, kept)
	}
	c.Put(hs[Ways], 100) // an update stays in its slot
	if v, _ := c.Get(hs[Ways]); v != 100 {
		t.Fatalf("updated to %d", v)
	}
}

// Two keys that share a bucket never evict each other (the direct-mapped form thrashed: a crawler-list match per event).
func TestSharedBucketNoThrash(t *testing.T) {
	c := New(1) // the smallest table: every key on one bucket
	a, b := c.Hash([]byte("ua a")), c.Hash([]byte("ua b"))
	c.Put(a, 1)
	c.Put(b, 2)
	for i := 0; i < 100; i++ {
		if _, ok := c.Get(a); !ok {
			t.Fatal("a evicted")
		}
		if _, ok := c.Get(b); !ok {
			t.Fatal("b evicted")
		}
	}
}

// Writers racing on one bucket, with more keys than slots, never make a reader see one key's verdict under another key.
func TestNoTornReads(t *testing.T) {
	c := New(1)
	var hs [2 * Ways]uint64
	for i := range hs {
		hs[i] = c.Hash([]byte{'k', byte(i)})
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (i + w*Ways) % len(hs)
				c.Put(hs[k], uint64(k)<<32|uint64(i%1000))
			}
		}(w)
	}
	for i := 0; i < 200000; i++ {
		for k, h := range hs {
			if v, ok := c.Get(h); ok && v>>32 != uint64(k) {
				t.Fatalf("key %d answered verdict %x", k, v)
			}
		}
	}
	close(stop)
	wg.Wait()
}

func BenchmarkHashGet(b *testing.B) {
	c := New(4096)
	ua := []byte("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36")
	c.Put(c.Hash(ua), 1)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, ok := c.Get(c.Hash(ua)); !ok {
			b.Fatal("miss")
		}
	}
}
