//go:build linux

package ring

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/adtracker/adtracker/internal/testenv"
)

// On a disk without room for the ring file, Open fails with a clear error. Without the reservation it succeeded with a sparse file
// and the first Enqueue that touched an unbacked page killed the process with SIGBUS.
func TestOpenOnFullDiskFails(t *testing.T) {
	dir := testenv.Tmpfs(t, "256k")
	opt := Options{Capacity: 1 << 14, SlotSize: 56} // 1 MiB of file on a 256 KiB disk
	r, _, _, err := Open(filepath.Join(dir, "ring"), opt)
	if err == nil {
		// Touch every slot as producers would: this is where a sparse file dies.
		for {
			ok, err := r.Enqueue(make([]byte, 40))
			if err != nil || !ok {
				break
			}
		}
		_ = r.Close()
		t.Fatal("Open succeeded on a disk without room for the ring file")
	}
	if !strings.Contains(err.Error(), "reserve") {
		t.Fatalf("error does not say what failed: %v", err)
	}
}
