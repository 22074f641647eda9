package ring

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

func rec(i uint64) []byte {
	var b [24]byte
	binary.LittleEndian.PutUint64(b[:], i)
	binary.LittleEndian.PutUint64(b[8:], i*7+1)
	binary.LittleEndian.PutUint64(b[16:], ^i)
	return b[:]
}

func checkRec(t *testing.T, b []byte) uint64 {
	t.Helper()
	if len(b) != 24 {
		t.Fatalf("record of %d bytes", len(b))
	}
	i := binary.LittleEndian.Uint64(b)
	if binary.LittleEndian.Uint64(b[8:]) != i*7+1 || binary.LittleEndian.Uint64(b[16:]) != ^i {
		t.Fatalf("record %d is torn: % x", i, b)
	}
	return i
}

func TestFullAndRelease(t *testing.T) {
	r, err := New(Options{Capacity: 4, SlotSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 4; i++ {
		if ok, err := r.Enqueue(rec(i)); !ok || err != nil {
			t.Fatalf("enqueue %d: %v %v", i, ok, err)
		}
	}
	if ok, _ := r.Enqueue(rec(9)); ok {
		t.Fatal("enqueue into a full ring succeeded")
	}
	// Reading does not free: the ring stays full until Release.
	for i := uint64(0); i < 4; i++ {
		pos, data, ok := r.Next()
		if !ok || pos != i || checkRec(t, data) != i {
			t.Fatalf("Next = %d %v", pos, ok)
		}
	}
	if _, _, ok := r.Next(); ok {
		t.Fatal("Next on an empty ring")
	}
	if ok, _ := r.Enqueue(rec(9)); ok {
		t.Fatal("slots read but not released were reused")
	}
	if r.Len() != 4 {
		t.Fatalf("Len = %d", r.Len())
	}
	r.Release(1, 3) // out of order: slot 0 still held
	if ok, _ := r.Enqueue(rec(4)); ok {
		t.Fatal("enqueue went past an unreleased slot")
	}
	r.Release(0, 1)
	for i := uint64(4); i < 7; i++ {
		if ok, _ := r.Enqueue(rec(i)); !ok {
			t.Fatalf("enqueue %d after release failed", i)
		}
	}
	if _, err := r.Enqueue(make([]byte, 49)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}
}

func TestOptions(t *testing.T) {
	f := func(o Options, ok bool) {
		t.Helper()
		if _, err := New(o); (err == nil) != ok {
			t.Fatalf("New(%+v) err = %v", o, err)
		}
	}
	f(Options{Capacity: 8, SlotSize: 64}, true)
	f(Options{Capacity: 6, SlotSize: 64}, false)
	f(Options{Capacity: 8, SlotSize: 60}, false)
	f(Options{Capacity: 8, SlotSize: 16}, false)
	f(Options{Capacity: 1, SlotSize: 64}, false)
}

// Many producers, one consumer releasing in batches: every record arrives exactly once, intact. Run under -race (heap-backed ring,
// which the race detector sees).
func TestConcurrentProducers(t *testing.T) {
	const producers, per = 8, 20000
	r, _ := New(Options{Capacity: 1024, SlotSize: 64})
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				id := uint64(p*per + i)
				for {
					ok, err := r.Enqueue(rec(id))
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						break
					}
					time.Sleep(10 * time.Microsecond) // full: the consumer releases soon
				}
			}
		}(p)
	}
	seen := make([]bool, producers*per)
	got := 0
	var batchFrom uint64
	for got < producers*per {
		pos, data, ok := r.Next()
		if !ok {
			r.Release(batchFrom, r.head)
			batchFrom = r.head
			time.Sleep(5 * time.Microsecond)
			continue
		}
		id := checkRec(t, data)
		if seen[id] {
			t.Fatalf("record %d twice", id)
		}
		seen[id] = true
		got++
		if pos+1-batchFrom >= 100 {
			r.Release(batchFrom, pos+1)
			batchFrom = pos + 1
		}
	}
	wg.Wait()
}

func TestRecoverFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	opt := Options{Capacity: 8, SlotSize: 64}
	r, recs, _, err := Open(path, opt)
	if err != nil || len(recs) != 0 {
		t.Fatal(err, recs)
	}
	for i := uint64(0); i < 6; i++ {
		if ok, err := r.Enqueue(rec(i)); !ok || err != nil {
			t.Fatal("enqueue", i, ok, err)
		}
	}
	r.Next()
	r.Next()
	r.Next()
	r.Release(0, 2) // 0,1 stored elsewhere; 2 read but in flight; 3..5 not read yet
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// A corrupt published slot (bit rot after a machine crash) is counted, not returned.
	img, _ := os.ReadFile(path)
	img[headerSize+4*64+slotHeader] ^= 0xFF
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}

	r2, recs, st, err := Open(path, Options{Capacity: 16, SlotSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, rc := range recs {
		ids = append(ids, checkRec(t, rc.Data))
	}
	if fmt.Sprint(ids) != "[2 3 5]" || st.Corrupt != 1 || st.Pending != 3 {
		t.Fatalf("recovered %v, stats %+v; want [2 3 5] with 1 corrupt", ids, st)
	}
	r2.Reset()
	if r2.Cap() != 16 || r2.Len() != 0 {
		t.Fatalf("after reset: cap %d len %d", r2.Cap(), r2.Len())
	}
	r2.Close()
	_, recs, _, _ = Open(path, Options{Capacity: 16, SlotSize: 64})
	if len(recs) != 0 {
		t.Fatalf("Reset left %d records", len(recs))
	}
}

// The child process enqueues into a file-backed ring and reports each published id on stdout; the parent SIGKILLs it mid-stream and
// checks that Open returns every reported id (nothing answered is lost) and nothing torn.
func TestRecoverAfterSIGKILL(t *testing.T) {
	if path := os.Getenv("RING_CHILD_PATH"); path != "" {
		r, _, _, err := Open(path, Options{Capacity: 1 << 14, SlotSize: 64})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		w := bufio.NewWriter(os.Stdout)
		for i := uint64(0); ; i++ {
			if ok, _ := r.Enqueue(rec(i)); !ok {
				select {} // full: wait for the kill
			}
			fmt.Fprintln(w, i)
			if i%64 == 0 {
				_ = w.Flush() // a failed write shows up as a short count in the parent
			}
		}
	}
	path := filepath.Join(t.TempDir(), "ring")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRecoverAfterSIGKILL$")
	cmd.Env = append(os.Environ(), "RING_CHILD_PATH="+path)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	reported := -1
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("child: %s", sc.Text())
		}
		reported = n
		if n >= 5000 {
			break
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait() // reaps it; the error only reports the kill
	_, recs, st, err := Open(path, Options{Capacity: 1 << 14, SlotSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	if st.Corrupt != 0 {
		t.Fatalf("%d corrupt slots after SIGKILL", st.Corrupt)
	}
	for i, rc := range recs {
		if id := checkRec(t, rc.Data); id != uint64(i) || rc.Pos != uint64(i) {
			t.Fatalf("record %d is id %d at pos %d", i, id, rc.Pos)
		}
	}
	if len(recs) <= reported {
		t.Fatalf("child reported %d published, recovered only %d", reported+1, len(recs))
	}
}

func BenchmarkEnqueue(b *testing.B) {
	r, _ := New(Options{Capacity: 1 << 16, SlotSize: 512})
	p := make([]byte, 120)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ok, _ := r.Enqueue(p); !ok {
			b.StopTimer()
			r.drainAll()
			b.StartTimer()
			if ok, err := r.Enqueue(p); !ok {
				b.Fatal("enqueue into a drained ring:", err)
			}
		}
	}
}

func BenchmarkEnqueueParallelMapped(b *testing.B) {
	r, _, _, err := Open(filepath.Join(b.TempDir(), "ring"), Options{Capacity: 1 << 16, SlotSize: 512})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // consumer releasing as it reads, as the pipeline does once batches are stored
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			from := r.head
			for i := 0; i < 4096; i++ {
				if _, _, ok := r.Next(); !ok {
					break
				}
			}
			r.Release(from, r.head)
		}
	}()
	p := make([]byte, 120)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for {
				if ok, _ := r.Enqueue(p); ok {
					break
				}
			}
		}
	})
	close(stop)
	<-done
}

func (r *Ring) drainAll() {
	from := r.head
	for {
		if _, _, ok := r.Next(); !ok {
			break
		}
	}
	r.Release(from, r.head)
}
