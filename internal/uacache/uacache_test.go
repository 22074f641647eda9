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
	// Direct-mapped: another hash on the same slot replaces the entry.
	other := a ^ (c.mask + 1)
	c.Put(other, 9)
	if _, ok := c.Get(a); ok {
		t.Fatal("evicted entry still answered")
	}
	if v, ok := c.Get(other); !ok || v != 9 {
		t.Fatalf("replacing entry: %d %v", v, ok)
	}
}

// Writers racing on one slot never make a reader see one hash's verdict under another hash.
func TestNoTornReads(t *testing.T) {
	c := New(1)
	hs := [2]uint64{c.Hash([]byte("ua one")), c.Hash([]byte("ua two"))} // one slot: both share it
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
				c.Put(hs[w], uint64(w)<<32|uint64(i%1000))
			}
		}(w)
	}
	for i := 0; i < 200000; i++ {
		for w, h := range hs {
			if v, ok := c.Get(h); ok && v>>32 != uint64(w) {
				t.Fatalf("hash of writer %d answered verdict %x", w, v)
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
