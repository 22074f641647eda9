package ring

import (
	"path/filepath"
	"testing"
)

// BenchmarkMirrorSyncUnchanged is one Sync of the default 16 MiB ring when nothing changed: the hashing every sync pays, and how
// long the syncer keeps a CPU.
func BenchmarkMirrorSyncUnchanged(b *testing.B) {
	r, _, _, err := Open(filepath.Join(b.TempDir(), "ring"), Options{Capacity: 1 << 18, SlotSize: 56, Mirror: true})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.SetBytes(int64(len(r.mem)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := r.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}
