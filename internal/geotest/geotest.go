// Package geotest writes small MaxMind-format country databases for tests; no real database is shipped or downloaded.
package geotest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Country is a record as GeoLite2-Country and DB-IP Lite Country files hold it: {"country": {"iso_code": iso}}.
func Country(iso string) mmdbtype.Map {
	return mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(iso), "names": mmdbtype.Map{"en": mmdbtype.String(iso)}}}
}

// Write writes records (CIDR → record) to a new .mmdb in a test directory and returns its path. Reserved networks (the
// documentation ranges tests use) are allowed.
func Write(t testing.TB, records map[string]mmdbtype.Map) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "Test-Country", IncludeReservedNetworks: true, RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, rec := range records {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "test.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// Countries writes a database mapping each CIDR to a country record with that ISO code and returns its path.
func Countries(t testing.TB, codes map[string]string) string {
	t.Helper()
	recs := make(map[string]mmdbtype.Map, len(codes))
	for cidr, iso := range codes {
		recs[cidr] = Country(iso)
	}
	return Write(t, recs)
}
