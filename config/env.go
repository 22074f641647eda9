package config

import (
	"sort"
	"strings"
)

// EnvPrefix starts every setting's environment variable.
const EnvPrefix = "ADTRACKER_"

// UnknownVar is an ADTRACKER_* environment variable that is no setting's.
type UnknownVar struct {
	Name       string
	DidYouMean string // the setting's variable it is closest to, when one is close enough to be a typo; "" otherwise
}

// UnknownEnv returns the ADTRACKER_* variables in environ (os.Environ's form) that Load does not read, sorted by name. Load
// ignores them, as it must: the environment is shared with wrappers and test harnesses. But a misspelt variable silently leaves
// its setting at the default — an admin token that never took effect, a DSN pointing at the default Postgres — so the commands
// log them at start (cmd/adtracker/setup.go).
func UnknownEnv(environ []string) []UnknownVar {
	known := make(map[string]bool, len(Settings))
	for _, s := range Settings {
		known[s.Env()] = true
	}
	var out []UnknownVar
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || known[name] {
			continue
		}
		out = append(out, UnknownVar{Name: name, DidYouMean: closestSetting(name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// closestSetting is the setting's variable nearest to name by edit distance, if at most a quarter of name's length after the
// prefix (and at most 4) away: ADTRACKER_ADMIN_TOKNE finds ADTRACKER_ADMIN_TOKEN, ADTRACKER_TEST_PG_DSN finds nothing.
func closestSetting(name string) string {
	best, bestD := "", min(4, (len(name)-len(EnvPrefix))/4)+1
	for _, s := range Settings {
		if d := editDistance(name, s.Env()); d < bestD {
			best, bestD = s.Env(), d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes; the names are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
