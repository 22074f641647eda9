// Package migrations embeds the numbered SQL files for Postgres and ClickHouse and parses them into ordered steps.
package migrations

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed postgres/*.sql clickhouse/*.sql clickhouse/cluster/*.sql
var files embed.FS

// File is one migration: NNNN_name.sql.
type File struct {
	Version  int
	Name     string // file name, e.g. 0001_events.sql
	SQL      string
	Checksum string // hex sha256 of the file's bytes; an applied file whose checksum changes is refused
	// MinServer is the lowest ClickHouse server version (e.g. "19.6") the file needs, from a
	// "-- adtracker:min-server 19.6" line. Empty means every supported server. Runners record a
	// file the server is too old for as skipped and apply it after an upgrade.
	MinServer string
}

const minServerTag = "-- adtracker:min-server "

// Postgres returns the Postgres migrations in version order.
func Postgres() ([]File, error) { return load("postgres") }

// ClickHouse returns the ClickHouse migrations in version order.
func ClickHouse() ([]File, error) { return load("clickhouse") }

// ClickHouseCluster returns the cluster form of the ClickHouse migrations (clickhouse.cluster set): the same versions and names as
// ClickHouse(), with Replicated* local tables, Distributed tables under the single-node names, and ${CLUSTER} / ${DATABASE} for
// Expand to fill in.
func ClickHouseCluster() ([]File, error) { return load("clickhouse/cluster") }

// Expand fills in a cluster migration's ${CLUSTER} and ${DATABASE}. Nothing else is touched: {shard} and {replica} are macros each
// server expands in its own ReplicatedMergeTree path. Both values are identifiers the caller validated, because DDL cannot bind them.
func Expand(sql, cluster, database string) string {
	return strings.NewReplacer("${CLUSTER}", cluster, "${DATABASE}", database).Replace(sql)
}

// Load reads NNNN_*.sql files from dir of fsys; exported for tests that build their own sets.
func Load(fsys fs.FS, dir string) ([]File, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []File
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s/%s: name must be NNNN_description.sql", dir, name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migration %s/%s: version %d already used by %s", dir, name, v, prev)
		}
		seen[v] = name
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		f := File{Version: v, Name: name, SQL: string(b), Checksum: hex.EncodeToString(sum[:])}
		for _, line := range strings.Split(f.SQL, "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), minServerTag); ok {
				f.MinServer = strings.TrimSpace(rest)
			}
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

func load(dir string) ([]File, error) { return Load(files, dir) }

// Statements splits a file into statements on semicolons outside quotes and comments, and
// drops empty ones, because neither ClickHouse's native protocol nor a pgx prepared
// statement takes several statements at once.
func Statements(sql string) []string {
	var out []string
	var cur strings.Builder
	inSingle, inDouble, inBack, inLine, inBlock := false, false, false, false, false
	flush := func() {
		s := strings.TrimSpace(cur.String())
		if s != "" && !onlyComments(s) {
			out = append(out, s)
		}
		cur.Reset()
	}
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		next := byte(0)
		if i+1 < len(sql) {
			next = sql[i+1]
		}
		switch {
		case inLine:
			if c == '\n' {
				inLine = false
			}
		case inBlock:
			if c == '*' && next == '/' {
				inBlock = false
				cur.WriteByte(c)
				i++
				c = next
			}
		case inSingle:
			if c == '\\' && next != 0 {
				cur.WriteByte(c)
				i++
				c = next
			} else if c == '\'' {
				inSingle = false
			}
		case inDouble:
			if c == '"' {
				inDouble = false
			}
		case inBack:
			if c == '`' {
				inBack = false
			}
		default:
			switch {
			case c == '-' && next == '-':
				inLine = true
			case c == '/' && next == '*':
				inBlock = true
			case c == '\'':
				inSingle = true
			case c == '"':
				inDouble = true
			case c == '`':
				inBack = true
			case c == ';':
				flush()
				continue
			}
		}
		cur.WriteByte(c)
	}
	flush()
	return out
}

func onlyComments(s string) bool {
	for _, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "--") {
			return false
		}
	}
	return true
}

// ServerAtLeast reports whether a ClickHouse version string ("18.16.1", "25.8.3.66") is at
// least minimum ("19.6"). An empty minimum is always satisfied.
func ServerAtLeast(version, minimum string) bool {
	if minimum == "" {
		return true
	}
	a, b := splitVersion(version), splitVersion(minimum)
	for i := 0; i < len(b); i++ {
		var x int
		if i < len(a) {
			x = a[i]
		}
		if x != b[i] {
			return x > b[i]
		}
	}
	return true
}

func splitVersion(v string) []int {
	var out []int
	for _, p := range strings.Split(strings.TrimSpace(v), ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			break
		}
		out = append(out, n)
	}
	return out
}
