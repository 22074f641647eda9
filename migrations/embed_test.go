package migrations

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestStatements(t *testing.T) {
	f := func(in string, want ...string) {
		t.Helper()
		got := Statements(in)
		if len(got) != len(want) {
			t.Fatalf("Statements(%q) = %q, want %q", in, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("Statements(%q)[%d] = %q, want %q", in, i, got[i], want[i])
			}
		}
	}
	f("")
	f("-- only a comment\n")
	f("SELECT 1", "SELECT 1")
	f("SELECT 1; SELECT 2;", "SELECT 1", "SELECT 2")
	f("SELECT ';'; SELECT 2", "SELECT ';'", "SELECT 2")
	f("SELECT 'it''s;' ; x", "SELECT 'it''s;'", "x")
	f("SELECT 'a\\';b'; c", "SELECT 'a\\';b'", "c")
	f("-- a; comment\nSELECT 1;", "-- a; comment\nSELECT 1")
	f("/* x; y */ SELECT 1; SELECT \"a;b\"", "/* x; y */ SELECT 1", "SELECT \"a;b\"")
	f("CREATE FUNCTION f() AS $$ x $$;\n-- trailing comment\n", "CREATE FUNCTION f() AS $$ x $$")
}

func TestServerAtLeast(t *testing.T) {
	f := func(v, minimum string, want bool) {
		t.Helper()
		if got := ServerAtLeast(v, minimum); got != want {
			t.Fatalf("ServerAtLeast(%q, %q) = %v, want %v", v, minimum, got, want)
		}
	}
	f("18.16.1", "", true)
	f("18.16.1", "19.6", false)
	f("19.6", "19.6", true)
	f("19.10.1.5", "19.6", true)
	f("25.8.3.66", "21.11", true)
	f("18.16.1", "18.16.1", true)
	f("18.16.0", "18.16.1", false)
}

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"x/0002_b.sql": {Data: []byte("-- adtracker:min-server 19.6\nALTER TABLE t MODIFY TTL d;")},
		"x/0001_a.sql": {Data: []byte("CREATE TABLE t (d Date) ENGINE = Memory;")},
		"x/README.md":  {Data: []byte("ignored")},
	}
	got, err := Load(fsys, "x")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Version != 1 || got[1].Version != 2 || got[1].MinServer != "19.6" || got[0].MinServer != "" {
		t.Fatalf("Load = %+v", got)
	}
	if got[0].Checksum == got[1].Checksum || len(got[0].Checksum) != 64 {
		t.Fatalf("checksums %q %q", got[0].Checksum, got[1].Checksum)
	}
	bad := fstest.MapFS{"x/01a.sql": {Data: []byte("x")}}
	if _, err := Load(bad, "x"); err == nil {
		t.Fatal("Load accepted a badly named file")
	}
	dup := fstest.MapFS{"x/0001_a.sql": {Data: []byte("x")}, "x/0001_b.sql": {Data: []byte("y")}}
	if _, err := Load(dup, "x"); err == nil {
		t.Fatal("Load accepted a duplicate version")
	}
	embedded, err := ClickHouse()
	if err != nil || len(embedded) == 0 {
		t.Fatalf("ClickHouse() = %v, %v", embedded, err)
	}
	pg, err := Postgres()
	if err != nil || len(pg) == 0 {
		t.Fatalf("Postgres() = %v, %v", pg, err)
	}
}

// The cluster files are a second form of the same schema: a version missing from one set would leave a cluster install with a
// different schema history than a single-node one, and the runner records both by version.
func TestClusterFormMatchesSingleNode(t *testing.T) {
	single, err := ClickHouse()
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := ClickHouseCluster()
	if err != nil {
		t.Fatal(err)
	}
	if len(single) == 0 || len(single) != len(cluster) {
		t.Fatalf("%d single-node files, %d cluster files", len(single), len(cluster))
	}
	for i := range single {
		if single[i].Name != cluster[i].Name || single[i].MinServer != cluster[i].MinServer {
			t.Errorf("file %d: single-node %s (min %q), cluster %s (min %q)", i, single[i].Name, single[i].MinServer, cluster[i].Name, cluster[i].MinServer)
		}
		for _, stmt := range Statements(cluster[i].SQL) {
			if !strings.Contains(stmt, "ON CLUSTER ${CLUSTER}") {
				t.Errorf("%s: statement without ON CLUSTER ${CLUSTER}: %.80s", cluster[i].Name, stmt)
			}
		}
		if strings.Contains(single[i].SQL, "${") {
			t.Errorf("%s: single-node file uses ${...}", single[i].Name)
		}
	}
}

func TestExpand(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := Expand(in, "c1", "db"); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
	f("CREATE TABLE ${DATABASE}.t ON CLUSTER ${CLUSTER}", "CREATE TABLE db.t ON CLUSTER c1")
	f("ReplicatedMergeTree('/clickhouse/tables/{shard}/${DATABASE}/t', '{replica}')", "ReplicatedMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}')")
	f("${CLUSTERS} $CLUSTER", "${CLUSTERS} $CLUSTER")
}
