package clickhouse

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The node id is generated once into the data dir (owner-only) and read back by every later start; a configured one wins and
// must not contain '-', which separates the parts of a query id.
func TestNodeID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ingest")
	first, err := NodeID("", dir)
	if err != nil || !nodeIDRE.MatchString(first) {
		t.Fatalf("generated %q, %v", first, err)
	}
	st, err := os.Stat(filepath.Join(dir, nodeIDFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("node_id file mode %v; want 0600", st.Mode().Perm())
	}
	if again, err := NodeID("", dir); err != nil || again != first {
		t.Fatalf("second start got %q, %v; want %q", again, err, first)
	}
	if got, err := NodeID("edge_7", dir); err != nil || got != "edge_7" {
		t.Fatalf("configured: %q, %v", got, err)
	}
	if _, err := NodeID("edge-7", dir); err == nil || !strings.Contains(err.Error(), "clickhouse.node_id") {
		t.Fatalf("a node id with '-': %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, nodeIDFile), []byte("not an id!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NodeID("", dir); err == nil || !strings.Contains(err.Error(), nodeIDFile) {
		t.Fatalf("a damaged node_id file: %v, want an error naming it", err)
	}
}

func TestQueryIDs(t *testing.T) {
	a, b := newQueryIDs("n1"), newQueryIDs("n1")
	id, seq := a.next()
	if !strings.HasPrefix(id, "adtracker-ins-n1-") || seq != 1 {
		t.Fatalf("first id %q seq %d", id, seq)
	}
	if s, own := a.ownSeq(id); !own || s != 1 {
		t.Fatalf("ownSeq(%q) = %d, %v", id, s, own)
	}
	if _, own := b.ownSeq(id); own || a.process == b.process {
		t.Fatalf("another process (%q) claims %q", b.process, id)
	}
	if _, own := newQueryIDs("n").ownSeq(id); own || strings.HasPrefix(id, newQueryIDs("n").node) {
		t.Fatal("node n's prefix covers node n1's ids")
	}
	next, _ := a.next()
	if next == id {
		t.Fatal("two inserts with one id")
	}
}
