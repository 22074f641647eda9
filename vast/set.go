package vast

import (
	"math/rand/v2"
	"sort"

	"github.com/adtracker/adtracker/catalog"
)

// set is the servable part of one catalogue snapshot, rendered for one base URL: a template per eligible ad, and the cumulative
// weights GET /vast draws from. Immutable once built; a new snapshot gets a new set, which reuses the templates of ads whose version
// did not change.
type set struct {
	snap *catalog.Snapshot
	base string
	ads  map[uint64]*Template
	ids  []uint64 // ads with weight > 0, in id order
	cum  []uint64 // cum[i] = sum of the weights of ids[0..i]
}

// buildSet renders snap for base, taking unchanged templates from prev.
func buildSet(snap *catalog.Snapshot, base string, prev *set) *set {
	s := &set{snap: snap, base: base, ads: map[uint64]*Template{}}
	if snap == nil {
		return s
	}
	type idWeight struct{ id, weight uint64 }
	var weighted []idWeight
	for id, e := range snap.All() {
		if !Eligible(e) {
			continue
		}
		var t *Template
		if prev != nil && prev.base == base {
			if old := prev.ads[id]; old != nil && old.Version == e.Creative.Version {
				t = old
			}
		}
		if t == nil {
			t = Render(base, id, e)
		}
		s.ads[id] = t
		if e.Creative.Weight > 0 {
			weighted = append(weighted, idWeight{id, uint64(e.Creative.Weight)})
		}
	}
	sort.Slice(weighted, func(i, j int) bool { return weighted[i].id < weighted[j].id })
	var total uint64
	for _, w := range weighted {
		total += w.weight
		s.ids = append(s.ids, w.id)
		s.cum = append(s.cum, total)
	}
	return s
}

// pick draws an ad with probability weight / total weight; 0 when no ad has a weight.
func (s *set) pick() uint64 {
	if len(s.cum) == 0 {
		return 0
	}
	r := rand.Uint64N(s.cum[len(s.cum)-1]) //nolint:gosec // choosing an ad needs spread, not secrecy
	i := sort.Search(len(s.cum), func(i int) bool { return s.cum[i] > r })
	return s.ids[i]
}
