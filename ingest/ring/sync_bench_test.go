package ring

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/adtracker/adtracker/internal/testenv"
)

// BenchmarkEnqueueMappedSynced prices the ring file's durability per record: one producer at a server's pace (paced below), the
// consumer releasing what it reads, and Sync every interval as the pipeline's syncer does — msync of the mapping, or the mirror
// (mirror.go) — against no Sync at all. Every msync write-protects the pages it writes back, so the next write to each faults;
// that price is per page dirtied between two syncs, not per msync call, and it lands mostly on the producers. The wall time per
// op is mostly the pacing: read cpu-ns/op, the process's CPU per record, and compare the sub-benchmarks of one run
// (BENCHMARKS.md, "Design measurements").
func BenchmarkEnqueueMappedSynced(b *testing.B) {
	for _, bc := range []struct {
		name     string
		interval time.Duration
		mirror   bool
	}{
		{"sync=off", 0, false}, {"msync=1s", time.Second, false}, {"mirror=1s", time.Second, true},
		{"msync=100ms", 100 * time.Millisecond, false}, {"mirror=100ms", 100 * time.Millisecond, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r, _, _, err := Open(filepath.Join(b.TempDir(), "ring"), Options{Capacity: 1 << 18, SlotSize: 56, Mirror: bc.mirror})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				var tick <-chan time.Time
				if bc.interval > 0 {
					t := time.NewTicker(bc.interval)
					defer t.Stop()
					tick = t.C
				}
				for {
					select {
					case <-stop:
						return
					case <-tick:
						if err := r.Sync(); err != nil {
							b.Error(err)
						}
					case <-time.After(time.Millisecond): // the pipeline's batcher naps 1 ms when the ring is empty
						from := r.head
						for {
							if _, _, _, ok := r.Next(); !ok {
								break
							}
						}
						r.Release(from, r.head)
					}
				}
			}()
			p := make([]byte, 200) // about an encoded event of the load generator's traffic
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			cpu0 := testenv.ProcessCPU(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for {
					ok, err := r.Enqueue(p)
					if err != nil {
						b.Fatal(err)
					}
					if ok {
						break
					}
					time.Sleep(100 * time.Microsecond)
				}
				if i%100 == 99 {
					time.Sleep(time.Millisecond) // ≤ 100,000 records/s: a loaded server's rate, so the ring laps about once a second
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(testenv.ProcessCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			close(stop)
			<-done
		})
	}
}
