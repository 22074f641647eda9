package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Late commits. An INSERT whose data the server received in full is completed by the server even when the client gave up waiting
// (timeout, broken connection): the sink reports it uncertain and the batch is spilled marked MaybeStored. If the replay's
// stored-event check ran while that INSERT was still running, it would find nothing, insert the batch again, and the original
// would commit after it: every row twice. So before the check, settle makes sure that no insert whose outcome is unknown is
// still running anywhere it may run:
//
//   - this process's inserts that ended uncertain (lateInserts, in memory), and
//   - every insert of an earlier process of this node (by the query id prefix; their outcome is unknown to this process).
//
// It polls system.processes (query_id and initial_query_id, so the sub-inserts a Distributed table sends to the shards count too;
// on a cluster on every host of system.clusters) until none is listed. After settleWait it asks the server to KILL QUERY … SYNC
// them and keeps polling while the caller's deadline allows. 18.16 refuses to kill an INSERT whose data came from the client
// ("unkillable stages", code 380); then the wait is all there is. A server that does not answer, or an insert still running when
// the deadline comes, is a retryable error: the replayer tries again later, and the batch stays MaybeStored.
//
// Once an insert is out of system.processes its parts are committed or discarded for good, so the stored check that follows
// sees its final outcome.
//
// Clusters: a current server runs the insert a Distributed table forwards to another shard with the original's id as
// initial_query_id, so the poll above finds it. 18.16 does not: the forwarded INSERT INTO <db>.events_local is an initial query
// with a random id. The Distributed insert waits for it, so while ours is listed it is covered; but one that ended by an error
// (insert_distributed_timeout) may leave its forwarded insert running. So on a cluster, once none of ours is listed, settle also
// waits for every forwarded-looking insert into this database's events_local that is running at that moment (whoever sent it:
// they cannot be told apart). Inserts forwarded later cannot belong to an insert that already ended. It does not kill those: they
// may be another node's live inserts.

// lateKeep bounds the remembered uncertain ids. Past it the oldest are folded into floor: every insert of this process with a
// sequence number at or below floor counts as uncertain, which is safe (settle waits for a few inserts it need not wait for).
const lateKeep = 256

// lateInserts is the set of this process's uncertain insert ids; safe for concurrent use.
type lateInserts struct {
	mu    sync.Mutex
	seqs  map[uint64]struct{}
	order []uint64 // insertion order, to fold the oldest into floor
	floor uint64
}

// add remembers an uncertain insert by its sequence number, which names it within this process.
func (l *lateInserts) add(seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seqs == nil {
		l.seqs = map[uint64]struct{}{}
	}
	l.seqs[seq] = struct{}{}
	l.order = append(l.order, seq)
	for len(l.seqs) > lateKeep {
		old := l.order[0]
		l.order = l.order[1:]
		if _, ok := l.seqs[old]; ok {
			delete(l.seqs, old)
			l.floor = max(l.floor, old)
		}
	}
}

// has reports whether seq is an uncertain insert of this process.
func (l *lateInserts) has(seq uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.seqs[seq]
	return ok || seq <= l.floor
}

// snapshot returns what forget may later drop: the remembered sequence numbers and the floor.
func (l *lateInserts) snapshot() ([]uint64, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]uint64, 0, len(l.seqs))
	for s := range l.seqs {
		out = append(out, s)
	}
	return out, l.floor
}

// forget drops inserts that settle saw ended: their outcome is final, so later checks need not wait for them again.
func (l *lateInserts) forget(seqs []uint64, floor uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range seqs {
		delete(l.seqs, s)
	}
	if l.floor == floor {
		l.floor = 0
	}
	kept := l.order[:0]
	for _, s := range l.order {
		if _, ok := l.seqs[s]; ok {
			kept = append(kept, s)
		}
	}
	l.order = kept
}

// settlePoll is the pause between two looks at system.processes.
const settlePoll = 100 * time.Millisecond

// ErrInsertStillRunning is wrapped in the *Error settle returns when an earlier insert was still running at the caller's deadline.
var ErrInsertStillRunning = errors.New("an earlier insert whose outcome is unknown is still running")

// settle returns once no insert of interest is running on any host (see the comment at the top of this file).
func (s *Sink) settle(ctx context.Context) error {
	seqs, floor := s.late.snapshot()
	hosts := []replica{{addr: s.db.cfg.Addr, conn: s.db.Conn}}
	if s.db.cfg.Cluster != "" {
		rs, err := s.db.replicaConns(ctx, s.db.replicas)
		if err != nil {
			return err
		}
		hosts = append(hosts, rs...)
	}
	// Half of the caller's remaining time at most, so the stored check and the insert after it still have the other half.
	start := time.Now()
	killAt, giveUp := start.Add(s.settleWait), time.Time{}
	if dl, ok := ctx.Deadline(); ok {
		budget := dl.Sub(start) / 2
		giveUp = start.Add(budget)
		killAt = start.Add(min(s.settleWait, budget/2))
	}
	killed := false
	// watch is what the first poll found: an insert whose outcome is unknown started before settle did, so inserts that start later
	// (a concurrent process of this node, e.g. a dead-letter replay beside serve) are not waited for, and the wait ends.
	var watch map[int][]string
	var forwarded map[int][]string // cluster only: the forwarded inserts seen once ours were gone; nil until then
	for {
		running := map[int][]string{} // host index → ids of interest running there
		for i, h := range hosts {
			ids, err := s.running(ctx, h)
			if s.down.skip(h.addr, err, time.Now(), s.downGrace) {
				continue
			}
			if err != nil {
				return err
			}
			if watch != nil {
				ids = slices.DeleteFunc(ids, func(id string) bool { return !slices.Contains(watch[i], id) })
			}
			if len(ids) > 0 {
				running[i] = ids
			}
		}
		if watch == nil {
			watch = running
		}
		if len(running) == 0 && s.db.cfg.Cluster != "" {
			var err error
			if forwarded, err = s.forwardedLeft(ctx, hosts, forwarded); err != nil {
				return err
			}
			running = forwarded
		}
		if len(running) == 0 {
			s.late.forget(seqs, floor)
			return nil
		}
		if forwarded == nil && !killed && !time.Now().Before(killAt) {
			killed = true
			for i, ids := range running {
				if err := kill(ctx, hosts[i], ids); err != nil {
					return err
				}
			}
			continue
		}
		if !giveUp.IsZero() && !time.Now().Before(giveUp) {
			return stillRunning(hosts, running, context.DeadlineExceeded)
		}
		t := time.NewTimer(settlePoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return stillRunning(hosts, running, ctx.Err())
		case <-t.C:
		}
	}
}

// hostDown reports whether err says nothing listens at the host's address.
func hostDown(err error) bool {
	return err != nil && errors.Is(err, syscall.ECONNREFUSED)
}

// defaultDownGrace is how long a host must have refused connections before settle stops asking it. A server that shuts down closes
// its listener first and then lets running queries finish (shutdown_wait_unfinished, 5 s by default), so a first refusal does
// not yet mean nothing runs there; a server that has refused for longer is down, and an insert it was running ended with its
// process (a restarted server discards parts it had not committed).
const defaultDownGrace = 30 * time.Second

// downHosts remembers since when each host refuses connections, so a replica that is down stops blocking every replay after
// the grace (the stored check then decides whether its shard can still be read). A host that answers with an error, or not at
// all, is never skipped: it may still be committing.
type downHosts struct {
	mu    sync.Mutex
	since map[string]time.Time
}

// skip reports whether settle may ignore the host given the error of asking it (nil: it answered): it has refused connections
// for at least grace.
func (d *downHosts) skip(addr string, err error, now time.Time, grace time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !hostDown(err) {
		delete(d.since, addr)
		return false
	}
	if d.since == nil {
		d.since = map[string]time.Time{}
	}
	first, ok := d.since[addr]
	if !ok {
		d.since[addr], first = now, now
	}
	return now.Sub(first) >= grace
}

func stillRunning(hosts []replica, running map[int][]string, cause error) error {
	var names []string
	for i, ids := range running {
		names = append(names, hosts[i].addr+": "+strings.Join(ids, ","))
	}
	sort.Strings(names)
	return &Error{Op: "wait for earlier inserts", Waiting: true, Err: fmt.Errorf("%w (%s): %w", ErrInsertStillRunning, strings.Join(names, "; "), cause)}
}

// running lists the ids of interest that h is running: this node's inserts, initial or a Distributed table's sub-insert, that
// belong to an earlier process or ended uncertain in this one. This process's other inserts are left alone — they are live.
func (s *Sink) running(ctx context.Context, h replica) ([]string, error) {
	op := "list running inserts on " + h.addr
	rows, err := h.conn.Query(ctx, "SELECT DISTINCT initial_query_id FROM system.processes WHERE startsWith(initial_query_id, "+
		quoteString(s.ids.node)+") OR startsWith(query_id, "+quoteString(s.ids.node)+")")
	if err != nil {
		return nil, classify(op, err, false)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, classify(op, err, false)
		}
		if seq, own := s.ids.ownSeq(id); own && !s.late.has(seq) {
			continue
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(op, err, false)
	}
	return out, nil
}

// forwardedLeft returns, per host index, the forwarded inserts into events_local (see the comment at the top) that are still running:
// with seen nil, all that run now; else those of seen that still run. It never returns nil.
func (s *Sink) forwardedLeft(ctx context.Context, hosts []replica, seen map[int][]string) (map[int][]string, error) {
	out := map[int][]string{}
	for i, h := range hosts {
		if seen != nil && len(seen[i]) == 0 {
			continue
		}
		op := "list forwarded inserts on " + h.addr
		rows, err := h.conn.Query(ctx, "SELECT query_id FROM system.processes WHERE is_initial_query = 1 AND startsWith(query, 'INSERT INTO ') "+
			"AND position(query, "+quoteString(s.db.Database)+") > 0 AND position(query, 'events_local') > 0 AND NOT startsWith(query_id, 'adtracker-')")
		if s.down.skip(h.addr, err, time.Now(), s.downGrace) {
			continue
		}
		if err != nil {
			return nil, classify(op, err, false)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, classify(op, err, false)
			}
			if seen == nil || slices.Contains(seen[i], id) {
				out[i] = append(out[i], id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, classify(op, err, false)
		}
	}
	return out, nil
}

// kill asks h to stop the queries ids and the sub-queries they started, waiting until they end (SYNC). A query the server cannot
// kill (18.16: an INSERT with client data, code 380) is left to finish; settle keeps waiting for it.
func kill(ctx context.Context, h replica, ids []string) error {
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = quoteString(id)
	}
	list := strings.Join(quoted, ",")
	rows, err := h.conn.Query(ctx, "KILL QUERY WHERE initial_query_id IN ("+list+") OR query_id IN ("+list+") SYNC")
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	if err != nil && !IsCode(err, codeCannotKill) {
		return classify("kill earlier inserts on "+h.addr, err, false)
	}
	return nil
}

// codeCannotKill is CANNOT_KILL: the query has stages that cannot be cancelled.
const codeCannotKill = 380
