package enrich

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/uacache"
)

// Geo answers the country of an address from a MaxMind-format database (.mmdb: MaxMind GeoLite2/GeoIP2 Country or City,
// DB-IP Lite Country or City): the record's country.iso_code, else registered_country.iso_code.
//
// A viewer sends several events per view (impression, start, quartiles, complete), so answers are cached by address first
// (16,384 entries, 256 KiB): a repeat costs a hash and a load. Otherwise the search tree is walked (~200 ns, most of the
// enrichment's cost) and, because many networks share one record, the decoded code is cached by record offset in a fixed table
// (geoCacheSlots words, each holding offset+1 << 16 | code); nothing is allocated once a record is cached.
// The file is memory-mapped and read as it was at open: restart to load an updated database.
type Geo struct {
	db    *maxminddb.Reader
	ips   *uacache.Cache // address → code | found<<16
	cache [geoCacheSlots]atomic.Uint64
}

const (
	geoCacheBits  = 14
	geoCacheSlots = 1 << geoCacheBits // 128 KiB

	geoIPCacheEntries = 16384
)

// OpenGeo opens the database at path (geo.mmdb_path).
func OpenGeo(path string) (*Geo, error) {
	db, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geo.mmdb_path %s: %w", path, err)
	}
	return &Geo{db: db, ips: uacache.New(geoIPCacheEntries)}, nil
}

// Close releases the database.
func (g *Geo) Close() error { return g.db.Close() }

// DatabaseType is the database's own name for its kind ("GeoLite2-Country", "DBIP-Country-Lite").
func (g *Geo) DatabaseType() string { return g.db.Metadata.DatabaseType }

// Country returns the ISO 3166-1 alpha-2 code (upper case) of ip (16 bytes, IPv4 mapped), or zero when unknown.
func (g *Geo) Country(ip [16]byte) [2]byte {
	h := g.ips.Hash(ip[:])
	if v, ok := g.ips.Get(h); ok {
		return [2]byte{byte(v >> 8), byte(v)}
	}
	code := g.lookup(ip)
	g.ips.Put(h, uint64(code[0])<<8|uint64(code[1]))
	return code
}

func (g *Geo) lookup(ip [16]byte) [2]byte {
	res := g.db.Lookup(netip.AddrFrom16(ip).Unmap())
	if !res.Found() {
		return [2]byte{}
	}
	off := uint64(res.Offset())
	slot := &g.cache[(off*0x9e3779b97f4a7c15)>>(64-geoCacheBits)] // Fibonacci hashing spreads nearby offsets
	if v := slot.Load(); v>>16 == off+1 {
		return [2]byte{byte(v >> 8), byte(v)}
	}
	code := decodeCountry(res)
	if off < 1<<47 {
		slot.Store((off+1)<<16 | uint64(code[0])<<8 | uint64(code[1]))
	}
	return code
}

func decodeCountry(res maxminddb.Result) [2]byte {
	for _, path := range [...]string{"country", "registered_country"} {
		var iso string
		if err := res.DecodePath(&iso, path, "iso_code"); err == nil {
			if code := event.ParseCountry(iso); code != ([2]byte{}) {
				return code
			}
		}
	}
	return [2]byte{}
}
