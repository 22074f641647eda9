package migrations

import (
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
	f := func(v, min string, want bool) {
		t.Helper()
		if got := ServerAtLeast(v, min); got != want {
			t.Fatalf("ServerAtLeast(%q, %q) = %v, want %v", v, min, got, want)
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
	real, err := ClickHouse()
	if err != nil || len(real) == 0 {
		t.Fatalf("ClickHouse() = %v, %v", real, err)
	}
	pg, err := Postgres()
	if err != nil || len(pg) == 0 {
		t.Fatalf("Postgres() = %v, %v", pg, err)
	}
}
