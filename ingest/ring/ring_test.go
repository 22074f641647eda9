package ring

import (
	"bufio"
	"bytes"
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

// rec is record i of n bytes (n ≥ 16): the id, then bytes derived from it, so a torn or shifted record cannot pass checkRec.
func rec(i uint64, n int) []byte {
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b, i)
	binary.LittleEndian.PutUint64(b[8:], i*7+1)
	for j := 16; j < n; j++ {
		b[j] = byte(i) + byte(j)
	}
	return b
}

// checkRec returns the id of a record made by rec, failing the test when its bytes do not match it.
func checkRec(t *testing.T, b []byte) uint64 {
	t.Helper()
	if len(b) < 16 {
		t.Fatalf("record of %d bytes", len(b))
	}
	i := binary.LittleEndian.Uint64(b)
	if !bytes.Equal(b, rec(i, len(b))) {
		t.Fatalf("record %d is torn: % x", i, b)
	}
	return i
}

// sizeOf gives record i a length that crosses slot boundaries of every slot size the tests use.
func sizeOf(i uint64) int { return 16 + int(i*37%200) }

func mustEnqueue(t *testing.T, r *Ring, p []byte) {
	t.Helper()
	if ok, err := r.Enqueue(p); !ok || err != nil {
		t.Fatalf("enqueue of %d bytes: %v %v (len %d of %d)", len(p), ok, err, r.Len(), r.Cap())
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
	f(Options{Capacity: 2, SlotSize: 16}, true)
	f(Options{Capacity: 8, SlotSize: 56}, true)
	f(Options{Capacity: 6, SlotSize: 64}, false)
	f(Options{Capacity: 8, SlotSize: 60}, false)
	f(Options{Capacity: 8, SlotSize: 8}, false)
	f(Options{Capacity: 8, SlotSize: 8192}, false)
	f(Options{Capacity: 1, SlotSize: 64}, false)

	g := func(o Options, maxRecord int, bytes int64) {
		t.Helper()
		r, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		if r.MaxRecord() != maxRecord || o.Bytes() != bytes {
			t.Fatalf("%+v: MaxRecord %d, Bytes %d; want %d, %d", o, r.MaxRecord(), o.Bytes(), maxRecord, bytes)
		}
	}
	g(Options{Capacity: 4, SlotSize: 64}, 2*64-8, 4096+4096+4*64)
	g(Options{Capacity: 1 << 18, SlotSize: 56}, 0xFFFF, 4096+(1<<18)*64)
	g(Options{Capacity: 1024, SlotSize: 56}, 512*56-8, 4096+8192+1024*56)
}

func TestSlotsMatchesDivision(t *testing.T) {
	for size := 16; size <= maxSlotSize; size += 8 {
		r, err := New(Options{Capacity: 2, SlotSize: size})
		if err != nil {
			t.Fatal(err)
		}
		for n := uint64(0); n <= 0xFFFF; n++ {
			if got, want := r.slots(n), (n+recHeader+uint64(size)-1)/uint64(size); got != want {
				t.Fatalf("slot size %d, record %d: %d slots, want %d", size, n, got, want)
			}
		}
	}
}

// Every length around the slot boundaries comes back with the claim it took: k = ceil((8+len)/SlotSize) slots, no padding while
// the record fits before the end.
func TestSizesAroundSlotBoundaries(t *testing.T) {
	r, err := New(Options{Capacity: 64, SlotSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	f := func(n int, slots uint64) {
		t.Helper()
		if err := r.Reset(); err != nil {
			t.Fatal(err)
		}
		p := rec(uint64(n), max(n, 16))[:n]
		mustEnqueue(t, r, p)
		from, to, data, ok := r.Next()
		if !ok || from != 0 || to != slots || !bytes.Equal(data, p) {
			t.Fatalf("len %d: Next = [%d,%d) %d bytes %v; want [0,%d)", n, from, to, len(data), ok, slots)
		}
		if r.Len() != int(slots) || r.Slots(n) != int(slots) {
			t.Fatalf("len %d: Len %d, Slots %d; want %d", n, r.Len(), r.Slots(n), slots)
		}
		if _, _, _, ok := r.Next(); ok {
			t.Fatal("a second record appeared")
		}
		r.Release(from, to)
		if r.Len() != 0 {
			t.Fatalf("Len %d after release", r.Len())
		}
	}
	f(0, 1)
	f(1, 1)
	f(55, 1)
	f(56, 1)
	f(57, 2)
	f(64, 2)
	f(120, 2)
	f(121, 3)
	f(451, 8)
	f(r.MaxRecord(), 32)
	if _, err := r.Enqueue(make([]byte, r.MaxRecord()+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}
}

// A record that would cross the end of the data array takes the slots up to the end as padding and starts at slot 0; the claim
// Next reports covers both, and releasing it frees both.
func TestWrapWithPadding(t *testing.T) {
	r, _ := New(Options{Capacity: 8, SlotSize: 16})
	mustEnqueue(t, r, rec(1, 40)) // 3 slots: 0..2
	mustEnqueue(t, r, rec(2, 40)) // 3..5
	f := func(wantFrom, wantTo uint64, id uint64) {
		t.Helper()
		from, to, data, ok := r.Next()
		if !ok || from != wantFrom || to != wantTo || checkRec(t, data) != id {
			t.Fatalf("Next = [%d,%d) %v; want [%d,%d) record %d", from, to, ok, wantFrom, wantTo, id)
		}
		r.Release(from, to)
	}
	f(0, 3, 1)
	// 6..7 are free but a 3-slot record does not fit there: pad 6,7 and use 0..2 (free again).
	mustEnqueue(t, r, rec(3, 40))
	if r.Len() != 3+5 {
		t.Fatalf("Len %d, want 8 (record 2, padding, record 3)", r.Len())
	}
	if ok, _ := r.Enqueue(rec(4, 16)); ok {
		t.Fatal("enqueue into a full ring succeeded")
	}
	f(3, 6, 2)
	f(6, 11, 3)
	// Everything released: a lap later the same geometry works again.
	for i := uint64(5); i < 40; i++ {
		mustEnqueue(t, r, rec(i, 16+int(i*7%41))) // 16..56 bytes: 2 to 4 slots, MaxRecord is 56
		from, to, data, ok := r.Next()
		if !ok || checkRec(t, data) != i || to-from > 2*uint64(r.Slots(len(data)))-1 {
			t.Fatalf("record %d: [%d,%d) %v", i, from, to, ok)
		}
		r.Release(from, to)
	}
}

func TestFullAndRelease(t *testing.T) {
	r, _ := New(Options{Capacity: 16, SlotSize: 32})
	// 4 records of 3 slots (len 80: 88/32 → 3) leave 4 slots, 1 more of 3 leaves 1.
	type claim struct{ from, to uint64 }
	var claims []claim
	for i := uint64(0); i < 5; i++ {
		mustEnqueue(t, r, rec(i, 80))
	}
	if ok, _ := r.Enqueue(rec(9, 40)); ok {
		t.Fatal("2-slot record enqueued with one slot free")
	}
	mustEnqueue(t, r, rec(5, 16)) // one slot: fits exactly
	if ok, _ := r.Enqueue(rec(9, 16)); ok || r.Len() != 16 {
		t.Fatalf("enqueue into a full ring: %v, Len %d", ok, r.Len())
	}
	// Reading does not free: the ring stays full until Release.
	for i := uint64(0); i < 6; i++ {
		from, to, data, ok := r.Next()
		if !ok || checkRec(t, data) != i {
			t.Fatalf("Next %d: %v", i, ok)
		}
		claims = append(claims, claim{from, to})
	}
	if _, _, _, ok := r.Next(); ok {
		t.Fatal("Next on an empty ring")
	}
	if ok, _ := r.Enqueue(rec(9, 16)); ok {
		t.Fatal("slots read but not released were reused")
	}
	r.Release(claims[1].from, claims[2].to) // out of order: claim 0 still held
	if ok, _ := r.Enqueue(rec(9, 16)); ok {
		t.Fatal("enqueue went past an unreleased slot")
	}
	r.Release(claims[0].from, claims[0].to)
	if r.Len() != 7 {
		t.Fatalf("Len %d, want 7", r.Len())
	}
	// 9 free slots (0..8): one record of 5 slots and one of 4, then full.
	mustEnqueue(t, r, rec(6, 150))
	mustEnqueue(t, r, rec(7, 120))
	if ok, _ := r.Enqueue(rec(9, 16)); ok {
		t.Fatal("enqueue into a full ring succeeded")
	}
	r.Release(claims[3].from, claims[5].to)
	for _, id := range []uint64{6, 7} {
		if _, _, data, ok := r.Next(); !ok || checkRec(t, data) != id {
			t.Fatalf("want record %d", id)
		}
	}
	// A 7-slot record now starts at 9: 9..15 are free.
	mustEnqueue(t, r, rec(8, 200))
	if _, _, data, ok := r.Next(); !ok || checkRec(t, data) != 8 {
		t.Fatal("want record 8")
	}
}

// Many producers, one consumer releasing in batches: every record arrives exactly once, intact, and each producer's records in the
// order it enqueued them; claims tile the positions without gaps. Run under -race (heap-backed ring, which the race detector sees).
func TestConcurrentProducers(t *testing.T) {
	const producers, per = 8, 10000
	r, _ := New(Options{Capacity: 1024, SlotSize: 32})
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := range per {
				id := uint64(p*per + i)
				b := rec(id, sizeOf(id))
				for {
					ok, err := r.Enqueue(b)
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
	last := make([]int, producers)
	for i := range last {
		last[i] = -1
	}
	got := 0
	var batchFrom, next uint64
	for got < producers*per {
		from, to, data, ok := r.Next()
		if !ok {
			r.Release(batchFrom, next)
			batchFrom = next
			time.Sleep(5 * time.Microsecond)
			continue
		}
		if from != next || to <= from {
			t.Fatalf("claim [%d,%d) after %d", from, to, next)
		}
		next = to
		id := checkRec(t, data)
		if seen[id] {
			t.Fatalf("record %d twice", id)
		}
		seen[id] = true
		if p, i := int(id)/per, int(id)%per; i <= last[p] {
			t.Fatalf("producer %d: record %d after %d", p, i, last[p])
		} else {
			last[p] = i
		}
		got++
		if to-batchFrom >= 100 {
			r.Release(batchFrom, to)
			batchFrom = to
		}
	}
	wg.Wait()
}

// enqueueTorn claims room for p and writes it without publishing, as a process killed between its CAS and its seq store leaves it.
func enqueueTorn(r *Ring, p []byte) {
	k := uint64(r.Slots(len(p)))
	pos := r.tail.Load()
	n := k
	if idx := pos & r.mask; idx+k > r.capacity {
		n += r.capacity - idx
	}
	r.tail.Store(pos + n)
	r.fill(pos, n, k, p)
}

func TestRecoverFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	opt := Options{Capacity: 32, SlotSize: 32}
	r, recs, _, err := Open(path, opt)
	if err != nil || len(recs) != 0 {
		t.Fatal(err, recs)
	}
	var from [8]uint64
	for i := uint64(0); i < 8; i++ {
		from[i] = r.tail.Load()
		mustEnqueue(t, r, rec(i, 20+int(i)*10)) // 1 to 4 slots
	}
	for range 3 {
		r.Next()
	}
	r.Release(0, from[2]) // 0,1 stored elsewhere; 2 read but in flight; 3..7 not read yet
	enqueueTorn(r, rec(8, 40))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	img, _ := os.ReadFile(path)
	data := img[dataOffset(32):]
	// Bit rot after a machine crash: a flipped payload byte in record 4, a length that runs past the data array in record 6.
	data[from[4]*32+recHeader+3] ^= 0xFF
	binary.LittleEndian.PutUint16(data[from[6]*32+4:], 0xFFF0)
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}

	r2, recs, st, err := Open(path, Options{Capacity: 64, SlotSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, rc := range recs {
		ids = append(ids, checkRec(t, rc.Data))
	}
	if fmt.Sprint(ids) != "[2 3 5 7]" || st.Corrupt != 2 || st.Pending != 4 {
		t.Fatalf("recovered %v, stats %+v; want [2 3 5 7] with 2 corrupt (the torn claim is not counted)", ids, st)
	}
	if err := r2.Reset(); err != nil {
		t.Fatal(err)
	}
	if r2.Cap() != 64 || r2.Len() != 0 {
		t.Fatalf("after reset: cap %d len %d", r2.Cap(), r2.Len())
	}
	r2.Close()
	_, recs, _, _ = Open(path, Options{Capacity: 64, SlotSize: 64})
	if len(recs) != 0 {
		t.Fatalf("Reset left %d records", len(recs))
	}
}

// Recovery across the wrap: records whose claims carry padding come back, in claim order.
func TestRecoverWrapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	opt := Options{Capacity: 16, SlotSize: 16}
	r, _, _, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	// Fill and release most of a lap, then enqueue records that wrap.
	for i := uint64(0); i < 4; i++ {
		mustEnqueue(t, r, rec(i, 40)) // 3 slots each: 0..11
		from, to, _, _ := r.Next()
		r.Release(from, to)
	}
	want := []uint64{}
	for i := uint64(4); i < 7; i++ {
		mustEnqueue(t, r, rec(i, 40)) // 12..14, then padding 15 + 16..18, then 19..21
		want = append(want, i)
	}
	if r.Len() != 10 {
		t.Fatalf("Len %d, want 10", r.Len())
	}
	r.Close()
	_, recs, st, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	var ids, pos []uint64
	for _, rc := range recs {
		ids = append(ids, checkRec(t, rc.Data))
		pos = append(pos, rc.Pos)
	}
	if fmt.Sprint(ids) != fmt.Sprint(want) || fmt.Sprint(pos) != "[12 15 19]" || st.Corrupt != 0 {
		t.Fatalf("recovered %v at %v, %+v", ids, pos, st)
	}
}

// A file written by the previous layout (testdata/v1.ring, made by the v1 code: 8 slots of 64 bytes, records 0..10 enqueued over a
// wrap, 0..4 released) gives back 5..10 in order; a process killed before Reset finds them again; Reset rewrites it as v2.
func TestRecoverV1File(t *testing.T) {
	v1, err := os.ReadFile("testdata/v1.ring")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ring")
	if err := os.WriteFile(path, v1, 0o600); err != nil {
		t.Fatal(err)
	}
	opt := Options{Capacity: 16, SlotSize: 56}
	f := func() *Ring {
		t.Helper()
		r, recs, st, err := Open(path, opt)
		if err != nil {
			t.Fatal(err)
		}
		var ids []uint64
		for _, rc := range recs {
			if len(rc.Data) != 24 {
				t.Fatalf("v1 record of %d bytes", len(rc.Data))
			}
			i := binary.LittleEndian.Uint64(rc.Data)
			if binary.LittleEndian.Uint64(rc.Data[8:]) != i*7+1 || binary.LittleEndian.Uint64(rc.Data[16:]) != ^i {
				t.Fatalf("v1 record %d torn", i)
			}
			ids = append(ids, i)
		}
		if fmt.Sprint(ids) != "[5 6 7 8 9 10]" || st.Corrupt != 0 {
			t.Fatalf("v1 recovered %v, %+v", ids, st)
		}
		return r
	}
	if err := f().Close(); err != nil { // "killed" before Reset
		t.Fatal(err)
	}
	r := f()
	if err := r.Reset(); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, r, rec(1, 100))
	r.Close()
	fi, _ := os.Stat(path)
	if fi.Size() != opt.Bytes() {
		t.Fatalf("file is %d bytes, want %d", fi.Size(), opt.Bytes())
	}
	_, recs, _, _ := Open(path, opt)
	if len(recs) != 1 || checkRec(t, recs[0].Data) != 1 {
		t.Fatalf("after upgrade: %d records", len(recs))
	}
}

// A smaller geometry does not shrink the file while it holds records: a crash between Open and Reset recovers them again.
func TestShrinkKeepsRecordsUntilReset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	big, small := Options{Capacity: 1024, SlotSize: 64}, Options{Capacity: 16, SlotSize: 16}
	r, _, _, _ := Open(path, big)
	for i := uint64(0); i < 100; i++ {
		mustEnqueue(t, r, rec(i, sizeOf(i)))
	}
	r.Close()
	for range 2 {
		r, recs, st, err := Open(path, small)
		if err != nil || len(recs) != 100 || st.Corrupt != 0 {
			t.Fatalf("recovered %d, %+v, %v", len(recs), st, err)
		}
		r.Close()
	}
	r, _, _, _ = Open(path, small)
	if err := r.Reset(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if fi, _ := os.Stat(path); fi.Size() != small.Bytes() {
		t.Fatalf("file is %d bytes after Reset, want %d", fi.Size(), small.Bytes())
	}
}

// The child process enqueues records of varied lengths into a file-backed ring and reports each published id on stdout; the parent
// SIGKILLs it mid-stream and checks that Open returns every reported id (nothing answered is lost), in order, and nothing torn.
func TestRecoverAfterSIGKILL(t *testing.T) {
	opt := Options{Capacity: 1 << 14, SlotSize: 56}
	if path := os.Getenv("RING_CHILD_PATH"); path != "" {
		r, _, _, err := Open(path, opt)
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		w := bufio.NewWriter(os.Stdout)
		for i := uint64(0); ; i++ {
			if ok, _ := r.Enqueue(rec(i, sizeOf(i))); !ok {
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
		if n >= 3000 {
			break
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait() // reaps it; the error only reports the kill
	_, recs, st, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	if st.Corrupt != 0 {
		t.Fatalf("%d corrupt records after SIGKILL", st.Corrupt)
	}
	var pos uint64
	for i, rc := range recs {
		if id := checkRec(t, rc.Data); id != uint64(i) || rc.Pos != pos {
			t.Fatalf("record %d is id %d at pos %d, want pos %d", i, id, rc.Pos, pos)
		}
		pos += uint64((sizeOf(uint64(i)) + recHeader + 55) / 56) // no wrap: nothing is released, so the child stops at the end of the first lap
	}
	if len(recs) <= reported {
		t.Fatalf("child reported %d published, recovered only %d", reported+1, len(recs))
	}
}

// scan reads whatever is in the file: it must never panic and never return bytes that are not in the image.
func FuzzScan(f *testing.F) {
	if v1, err := os.ReadFile("testdata/v1.ring"); err == nil {
		f.Add(v1)
	}
	r, _ := New(Options{Capacity: 8, SlotSize: 16})
	for i := uint64(0); i < 5; i++ {
		_, _ = r.Enqueue(rec(i, 16+int(i)*4))
		if i < 2 {
			from, to, _, _ := r.Next()
			r.Release(from, to)
		}
	}
	f.Add(append([]byte(nil), r.mem...))
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, img []byte) {
		if len(img) > 1<<16 {
			return // the check below is quadratic; 64 KiB covers every layout field of the seeds
		}
		recs, st := scan(img)
		if st.Pending != len(recs) || st.Corrupt < 0 {
			t.Fatalf("stats %+v for %d records", st, len(recs))
		}
		for _, rc := range recs {
			if len(rc.Data) > 0xFFFF || !bytes.Contains(img, rc.Data) {
				t.Fatalf("record at %d of %d bytes is not in the image", rc.Pos, len(rc.Data))
			}
		}
	})
}

// Header-sized fuzz seeds would not reach the slots; this drives scan over mutations of a real image instead.
func TestScanSurvivesDamage(t *testing.T) {
	r, _ := New(Options{Capacity: 64, SlotSize: 16})
	for i := uint64(0); i < 12; i++ {
		mustEnqueue(t, r, rec(i, sizeOf(i)%40+16))
		if i%3 == 0 {
			from, to, _, _ := r.Next()
			r.Release(from, to)
		}
	}
	img := append([]byte(nil), r.mem...)
	clean, _ := scan(img)
	for off := range img {
		if off >= 24 && off < headerSize {
			continue // unused header bytes
		}
		for _, x := range []byte{0x01, 0x80, 0xFF} {
			img[off] ^= x
			recs, _ := scan(img)
			for _, rc := range recs {
				if !bytes.Contains(img, rc.Data) {
					t.Fatalf("byte %d ^%#x: record not in the image", off, x)
				}
			}
			img[off] ^= x
		}
	}
	if len(clean) == 0 {
		t.Fatal("nothing recovered from the clean image")
	}
}

func BenchmarkEnqueue(b *testing.B) {
	r, _ := New(Options{Capacity: 1 << 16, SlotSize: 56})
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
	r, _, _, err := Open(filepath.Join(b.TempDir(), "ring"), Options{Capacity: 1 << 18, SlotSize: 56})
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
				if _, _, _, ok := r.Next(); !ok {
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
		if _, _, _, ok := r.Next(); !ok {
			break
		}
	}
	r.Release(from, r.head)
}
