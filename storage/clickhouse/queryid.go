package clickhouse

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Every insert carries a query id adtracker-ins-<node>-<boot>-<seq>: <node> names the node (Config.NodeID), <boot> this process
// (its start time in base 36 nanoseconds), <seq> the insert (counting from 1). The node id has no '-', so "adtracker-ins-<node>-"
// is a prefix of exactly this node's inserts and "adtracker-ins-<node>-<boot>-" of this process's; the late-commit check
// (latecommit.go) finds them in system.processes by those prefixes.
const queryIDPrefix = "adtracker-ins-"

var nodeIDRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// nodeIDFile is the file in the data directory that keeps a generated node id across restarts.
const nodeIDFile = "node_id"

func randomNodeID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail on Linux; a zero id would still be a valid name
	return hex.EncodeToString(b[:])
}

// NodeID returns configured when it is set, else the id kept in dir/node_id, creating the file with a random id on first use. The
// data directory is the node's identity: its spill holds the batches whose earlier inserts the late-commit check looks for, so
// an id kept there survives restarts and container re-creation exactly as long as those batches do, and two nodes never share it.
func NodeID(configured, dir string) (string, error) {
	if configured != "" {
		if !nodeIDRE.MatchString(configured) {
			return "", fmt.Errorf("clickhouse.node_id %q: use 1-64 letters, digits and underscores", configured)
		}
		return configured, nil
	}
	p := filepath.Join(dir, nodeIDFile)
	raw, err := os.ReadFile(p)
	if err == nil {
		id := strings.TrimSpace(string(raw))
		if !nodeIDRE.MatchString(id) {
			return "", fmt.Errorf("%s holds %q, not a node id (1-64 letters, digits and underscores): fix or remove it", p, id)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("node id: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	id := randomNodeID()
	// Written to a temporary name and renamed, so a crash never leaves a half-written id behind.
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	return id, nil
}

// queryIDs hands out this process's insert query ids.
type queryIDs struct {
	node    string // "adtracker-ins-<node>-"
	process string // "adtracker-ins-<node>-<boot>-"
	seq     atomic.Uint64
}

// lastBoot keeps boots strictly increasing, so two sinks made in one process (tests) never share one.
var lastBoot atomic.Int64

func newQueryIDs(node string) *queryIDs {
	boot := time.Now().UnixNano()
	for {
		last := lastBoot.Load()
		boot = max(boot, last+1)
		if lastBoot.CompareAndSwap(last, boot) {
			break
		}
	}
	n := queryIDPrefix + node + "-"
	return &queryIDs{node: n, process: n + strconv.FormatInt(boot, 36) + "-"}
}

// next returns a new id and its sequence number.
func (q *queryIDs) next() (string, uint64) {
	s := q.seq.Add(1)
	return q.process + strconv.FormatUint(s, 10), s
}

// ownSeq returns the sequence number of an id of this process, ok false for any other id.
func (q *queryIDs) ownSeq(id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, q.process)
	if !ok {
		return 0, false
	}
	s, err := strconv.ParseUint(rest, 10, 64)
	return s, err == nil
}
