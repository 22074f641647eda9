package spill

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/adtracker/adtracker/internal/testenv"
)

// segmentBytes is what the segment files hold beyond their headers.
func segmentBytes(t *testing.T, dir string) (data int64, files int) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, p := range segs {
		if fi, err := os.Stat(p); err == nil {
			data += fi.Size() - headerSize
		}
	}
	return data, len(segs)
}

// After an outage that filled the disk, the reader catching up deletes the acked segment even though no new segment finds room
// beside it; before, the acked records kept their disk space until the next Append, which may not come for days. What is
// appended afterwards is queued and survives a reopen.
func TestAckOnFullDiskFreesTheSegment(t *testing.T) {
	mnt := testenv.Tmpfs(t, "1m")
	dir := filepath.Join(mnt, "spill")
	q, err := Open(dir, Options{SegmentBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; ; n++ {
		if err := q.Append(rec(n)); err != nil {
			break // the disk is full
		}
	}
	if n < 100 {
		t.Fatalf("only %d records before the disk was full", n)
	}
	testenv.FillDisk(t, filepath.Join(mnt, "filler")) // the failed append gave back its pages: take them
	ids, last := readAll(t, q)
	if len(ids) != n {
		t.Fatalf("read %d of %d records", len(ids), n)
	}
	if err := q.Ack(last); err != nil {
		t.Fatal(err)
	}
	if data, files := segmentBytes(t, dir); data != 0 {
		t.Fatalf("after the last ack %d segment files still hold %d bytes of acked records", files, data)
	}
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	appendRange(t, q, n, n+10)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := open(t, dir, Options{SegmentBytes: 64 << 20})
	ids, _ = readAll(t, q2)
	if len(ids) != 10 || ids[0] != n {
		t.Fatalf("after reopening: records %v, want %d..%d", ids, n, n+9)
	}
	if st := q2.Stats(); st.MissingSegments != 0 || st.CorruptRegions != 0 {
		t.Fatalf("reopen reports damage: %+v", st)
	}
}
