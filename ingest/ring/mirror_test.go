package ring

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// otherBoot makes the test pose as the next boot of the machine: Open no longer trusts the ring file alone.
func otherBoot(t *testing.T) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "boot_id")
	if err := os.WriteFile(f, []byte("00000000-0000-4000-8000-000000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := bootIDFile
	bootIDFile = f
	t.Cleanup(func() { bootIDFile = old })
}

// crash drops the ring without Close: no sync, no msync, as when the process or the machine dies.
func crash(t *testing.T, r *Ring) {
	t.Helper()
	if err := unix.Munmap(r.mem); err != nil {
		t.Fatal(err)
	}
	r.mapped = false
	_ = r.file.Close()
	if r.mirror != nil {
		_ = r.mirror.close()
	}
}

func recIDs(t *testing.T, recs []Record) string {
	t.Helper()
	var ids []uint64
	for _, rc := range recs {
		ids = append(ids, checkRec(t, rc.Data))
	}
	return fmt.Sprint(ids)
}

// enqueueIDs enqueues the records rec(from) … rec(to-1).
func enqueueIDs(t *testing.T, r *Ring, from, to uint64) {
	t.Helper()
	for i := from; i < to; i++ {
		mustEnqueue(t, r, rec(i, sizeOf(i)))
	}
}

// reopen opens the ring at path again, with its mirror, as the next start would.
func reopen(t *testing.T, path string) (*Ring, []Record, RecoverStats) {
	t.Helper()
	r, recs, st, err := Open(path, Options{Capacity: 64, SlotSize: 32, Mirror: true})
	if err != nil {
		t.Fatal(err)
	}
	return r, recs, st
}

func openMirrored(t *testing.T, path string) *Ring {
	t.Helper()
	if bootID() == nil {
		t.Skip("no boot id on this system: Open always reads the mirror")
	}
	r, recs, _, err := Open(path, Options{Capacity: 64, SlotSize: 32, Mirror: true})
	if err != nil || len(recs) != 0 {
		t.Fatal(err, recs)
	}
	return r
}

// After Sync the mirror is the mapping byte for byte — header, sequence words and data — through laps, padding and releases.
func TestMirrorEqualsMappingAfterSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	r := openMirrored(t, path)
	defer r.Close()
	id := uint64(0)
	for round := range 12 {
		for range 5 + round%3 {
			if ok, _ := r.Enqueue(rec(id, sizeOf(id))); !ok {
				break
			}
			id++
		}
		if round%2 == 1 {
			r.drainAll()
		}
		if err := r.Sync(); err != nil {
			t.Fatal(err)
		}
		img, err := os.ReadFile(path + mirrorSuffix)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(img, r.mem) {
			t.Fatalf("round %d: the mirror differs from the mapping", round)
		}
	}
}

// A sync that fails part-way (here: the mirror's descriptor refuses writes) leaves no page believed written: the next sync that
// can write makes the mirror whole again.
func TestMirrorRewrittenAfterFailedSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	r := openMirrored(t, path)
	defer r.Close()
	good := r.mirror.f
	ro, err := os.Open(path + mirrorSuffix)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	enqueueIDs(t, r, 0, 5)
	r.mirror.f = ro
	if err := r.Sync(); err == nil {
		t.Fatal("sync through a read-only descriptor succeeded")
	}
	r.mirror.f = good
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	if img, _ := os.ReadFile(path + mirrorSuffix); !bytes.Equal(img, r.mem) {
		t.Fatal("the mirror differs from the mapping after a failed sync and a good one")
	}
}

// A machine crash: the ring file on disk is whatever the kernel wrote back — here nothing since Reset — and the next boot
// recovers from the mirror everything published before the last Sync. What came after it is the documented loss.
func TestMirrorRecoversAfterMachineCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	r := openMirrored(t, path)
	onDisk, err := os.ReadFile(path) // Reset msynced it: the disk holds an empty ring
	if err != nil {
		t.Fatal(err)
	}
	enqueueIDs(t, r, 0, 6)
	r.Next()
	r.Release(0, r.head) // record 0 stored before the sync
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	enqueueIDs(t, r, 6, 9)
	crash(t, r)
	if err := os.WriteFile(path, onDisk, 0o600); err != nil { // the page cache is gone
		t.Fatal(err)
	}
	otherBoot(t)
	r2, recs, st := reopen(t, path)
	defer r2.Close()
	if got := recIDs(t, recs); got != "[1 2 3 4 5]" || st.Pending != 5 || st.Corrupt != 0 {
		t.Fatalf("recovered %s %+v; want [1 2 3 4 5]", got, st)
	}
}

// The kernel may have written back ring pages after the mirror's last sync: a record found only in the ring file counts too, and
// one found in both comes back once.
func TestMirrorAndRingFileUnion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	r := openMirrored(t, path)
	enqueueIDs(t, r, 0, 4)
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	enqueueIDs(t, r, 4, 7)
	crash(t, r) // the ring file keeps everything (the page cache of a test process survives it)
	otherBoot(t)
	r2, recs, st := reopen(t, path)
	defer r2.Close()
	if got := recIDs(t, recs); got != "[0 1 2 3 4 5 6]" || st.Pending != 7 {
		t.Fatalf("recovered %s %+v; want [0 1 2 3 4 5 6]", got, st)
	}
}

// A process crash (same boot): the ring file is current, and the mirror — which still holds records stored since its last sync —
// is not read, so they are not replayed.
func TestMirrorIgnoredAfterProcessCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	r := openMirrored(t, path)
	enqueueIDs(t, r, 0, 4)
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	r.drainAll() // 0..3 stored after the sync
	enqueueIDs(t, r, 4, 6)
	crash(t, r)
	r2, recs, _ := reopen(t, path)
	if got := recIDs(t, recs); got != "[4 5]" {
		t.Fatalf("same boot recovered %s; want [4 5]", got)
	}
	crash(t, r2) // before Reset: both files stay as they were
	// Had the machine crashed instead, the stale mirror's records come back as well (replayed as maybe stored).
	otherBoot(t)
	r3, recs, _ := reopen(t, path)
	if got := recIDs(t, recs); got != "[0 1 2 3 4 5]" {
		t.Fatalf("other boot recovered %s; want [0 1 2 3 4 5]", got)
	}
	// Once the records are safe, Reset empties both copies.
	if err := r3.Reset(); err != nil {
		t.Fatal(err)
	}
	crash(t, r3)
	if _, recs, _ = reopen(t, path); len(recs) != 0 {
		t.Fatalf("after Reset: %s", recIDs(t, recs))
	}
}

// Damage to the mirror by byte: a record whose copy fails its checksum is counted, the others come back.
func TestMirrorDamageByByte(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	r := openMirrored(t, path)
	onDisk, _ := os.ReadFile(path)
	var pos [5]uint64
	for i := range uint64(5) {
		pos[i] = r.tail.Load()
		mustEnqueue(t, r, rec(i, sizeOf(i)))
	}
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	crash(t, r)
	_ = os.WriteFile(path, onDisk, 0o600)
	img, _ := os.ReadFile(path + mirrorSuffix)
	for b := 0; b < recHeader+16; b++ { // every byte of record 2's header and first payload bytes, one at a time
		bad := bytes.Clone(img)
		bad[dataOffset(64)+int64(pos[2])*32+int64(b)] ^= 0x5A
		if err := os.WriteFile(path+mirrorSuffix, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		otherBoot(t)
		r2, recs, st := reopen(t, path)
		if got := recIDs(t, recs); got != "[0 1 3 4]" || st.Corrupt != 1 {
			t.Fatalf("byte %d flipped: recovered %s %+v; want [0 1 3 4], 1 corrupt", b, got, st)
		}
		crash(t, r2) // records pending: Open left both files as they were
	}
}

// Without Options.Mirror, Reset removes a mirror left by an earlier configuration: it would hold records of another time.
func TestResetRemovesUnusedMirror(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	r := openMirrored(t, path)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + mirrorSuffix); err != nil {
		t.Fatal(err)
	}
	r2, _, _, err := Open(path, Options{Capacity: 64, SlotSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if _, err := os.Stat(path + mirrorSuffix); !os.IsNotExist(err) {
		t.Fatalf("mirror still there: %v", err)
	}
}
