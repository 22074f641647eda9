package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/spill"
)

// The dead-letter directory holds batches that ClickHouse refused for good (a permanent error) or that the replayer quarantined
// (refused too often while ClickHouse was up). Each batch is two files with one name: NAME.batch, the batch, and NAME.error.txt,
// the reason and ClickHouse's message. Both appear by rename, the error file first, so a NAME.batch is always whole and always has
// its reason. `adtracker deadletter replay` inserts them again.
//
// NAME.batch: magic "ADTDEAD1" | the batch's spill record form (event.Batch.MarshalRecord) | CRC-32C (Castagnoli) u32 of
// everything before it. The files wait on disk for a human, for days perhaps, and the event encoding has no checksum of its own:
// without this one a flipped bit in an ad id or a time would be inserted as a valid row. A file that does not match is listed as
// damaged by `deadletter ls` and refused by `replay`, never inserted. Files written before the checksum (no magic: they start with the record's
// flags byte, 0 or 1) are still read, unchecked.

// DeadLetterDir is the dead-letter directory's name under the data dir.
const DeadLetterDir = "deadletter"

const (
	deadLetterMagic = "ADTDEAD1"
	batchSuffix     = ".batch"
	errorSuffix     = ".error.txt"
	lockName        = ".lock" // held by `deadletter replay`: two replays of one file would insert it twice
)

var deadLetterSeq atomic.Uint64 // keeps names unique between inserters and the replayer within one nanosecond

// deadLetter writes b to the dead-letter directory with cause. On success the events are counted as not stored (reason) and
// logged with the file; on failure nothing is left behind (a full disk must not keep half files) and the caller keeps the batch.
func (p *Pipeline) deadLetter(b *event.Batch, cause error, reason string) error {
	dir := filepath.Join(p.cfg.Dir, DeadLetterDir)
	name := fmt.Sprintf("%020d-%06d", time.Now().UnixNano(), deadLetterSeq.Add(1)%1_000_000)
	base := filepath.Join(dir, name)
	msg := reason + ": " + cause.Error() + "\n"
	if err := writeFileAtomic(base+errorSuffix, []byte(msg)); err != nil {
		return err
	}
	if err := writeFileAtomic(base+batchSuffix, marshalDeadLetter(b)); err != nil {
		_ = os.Remove(base + errorSuffix)
		return err
	}
	if err := syncDir(dir); err != nil {
		// Both files are complete; only their names may not survive a machine crash. The batch is not kept anywhere else, so
		// report it and carry on rather than write it twice.
		p.log.Error("dead-letter directory fsync failed", zap.String("dir", dir), zap.Error(err))
	}
	notStored(reason, b.N)
	if reason == reasonQuarantined {
		p.Quarantined.Add(int64(b.N))
		batchesFlushed.WithLabelValues("quarantined").Inc()
	} else {
		p.DeadLettered.Add(int64(b.N))
		batchesFlushed.WithLabelValues("dead_lettered").Inc()
		rowsStored.WithLabelValues("dead_lettered").Add(float64(b.N))
	}
	p.log.Error("batch kept in the dead-letter directory, not in ClickHouse; `adtracker deadletter replay` inserts it again",
		zap.String("reason", reason), zap.String("file", base+batchSuffix), zap.Int("rows", b.N), zap.Error(cause))
	return nil
}

// DeadLetterFile describes one dead-lettered batch.
type DeadLetterFile struct {
	Path   string // NAME.batch
	Rows   int    // events in it; -1 when the file does not decode
	Bytes  int64
	Error  string // first line of NAME.error.txt: the reason and ClickHouse's message
	Damage string // why the file does not decode (Rows -1)
}

// ListDeadLetters lists the batches in dataDir's dead-letter directory, oldest first.
func ListDeadLetters(dataDir string) ([]DeadLetterFile, error) {
	dir := filepath.Join(dataDir, DeadLetterDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []DeadLetterFile
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), batchSuffix) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		out = append(out, describeDeadLetter(filepath.Join(dir, e.Name())))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func describeDeadLetter(path string) DeadLetterFile {
	f := DeadLetterFile{Path: path, Rows: -1}
	if fi, err := os.Stat(path); err == nil {
		f.Bytes = fi.Size()
	}
	if b, err := ReadDeadLetter(path); err == nil {
		f.Rows = b.N
	} else {
		f.Damage = strings.TrimPrefix(err.Error(), path+": ")
	}
	if msg, err := os.ReadFile(strings.TrimSuffix(path, batchSuffix) + errorSuffix); err == nil {
		line, _, _ := bufio.NewReader(bytes.NewReader(msg)).ReadLine()
		f.Error = string(line)
	}
	return f
}

// marshalDeadLetter is the NAME.batch file of b.
func marshalDeadLetter(b *event.Batch) []byte {
	dst := make([]byte, 0, len(deadLetterMagic)+5+b.Size()+4)
	dst = b.MarshalRecord(append(dst, deadLetterMagic...))
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst, castagnoli))
}

// ErrDeadLetterDamaged is the error of a NAME.batch file whose checksum, length or framing does not match: damaged on disk (or
// not a dead-letter file), never inserted.
var ErrDeadLetterDamaged = errors.New("dead-letter file damaged")

// decodeDeadLetter reads a NAME.batch file's bytes and checks that every event in them decodes. b.Data aliases data.
func decodeDeadLetter(data []byte) (*event.Batch, error) {
	rec := data // without the magic, an older file: the record alone, whose flags byte UnmarshalRecord checks
	if bytes.HasPrefix(data, []byte(deadLetterMagic)) {
		if len(data) < len(deadLetterMagic)+4 {
			return nil, fmt.Errorf("%w: truncated", ErrDeadLetterDamaged)
		}
		body := data[:len(data)-4]
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[len(body):]) {
			return nil, fmt.Errorf("%w: checksum mismatch", ErrDeadLetterDamaged)
		}
		rec = body[len(deadLetterMagic):]
	}
	b := &event.Batch{}
	if err := b.UnmarshalRecord(rec); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDeadLetterDamaged, err)
	}
	var e event.Event
	if err := b.Each(&e, func(*event.Event) error { return nil }); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDeadLetterDamaged, err)
	}
	return b, nil
}

// ReadDeadLetter reads a NAME.batch file: its checksum, then every event in it.
func ReadDeadLetter(path string) (*event.Batch, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, err := decodeDeadLetter(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// ReplayResult is what ReplayDeadLetters did with one file.
type ReplayResult struct {
	Path string
	Rows int
	Err  error // nil: inserted (rows already in ClickHouse skipped) and the files removed
}

// ReplayDeadLetters inserts the given NAME.batch files (all of dataDir's when paths is empty) through sink, oldest first, each as a
// MaybeStored batch so rows already stored are skipped, and removes each file once its insert succeeded. It holds a lock on the
// dead-letter directory so two replays never insert one file twice; a running server does not conflict: it only ever adds files,
// whole, by rename. It stops at the first error from ClickHouse (the rest would likely fail the same way) and returns results so far.
func ReplayDeadLetters(ctx context.Context, dataDir string, sink Sink, paths []string) ([]ReplayResult, error) {
	dir := filepath.Join(dataDir, DeadLetterDir)
	unlock, err := spill.Lock(filepath.Join(dir, lockName))
	if err != nil {
		if errors.Is(err, spill.ErrLocked) {
			return nil, fmt.Errorf("another deadletter replay is running on %s", dir)
		}
		return nil, err
	}
	defer unlock()
	if len(paths) == 0 {
		files, err := ListDeadLetters(dataDir)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			paths = append(paths, f.Path)
		}
	}
	var out []ReplayResult
	for _, path := range paths {
		r := ReplayResult{Path: path}
		b, err := ReadDeadLetter(path)
		if err != nil {
			r.Err = err
			out = append(out, r)
			continue // a damaged file does not stop the others
		}
		r.Rows = b.N
		b.MaybeStored = true
		if err := sink.Insert(ctx, b); err != nil {
			r.Err = err
			return append(out, r), err
		}
		if err := os.Remove(path); err != nil {
			r.Err = fmt.Errorf("inserted, but removing the file failed (a second replay skips the stored rows): %w", err)
		} else {
			_ = os.Remove(strings.TrimSuffix(path, batchSuffix) + errorSuffix)
		}
		out = append(out, r)
	}
	return out, nil
}
