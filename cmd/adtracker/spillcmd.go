package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/pipeline"
	"github.com/adtracker/adtracker/ingest/spill"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
)

// The operator's tools for what the pipeline keeps on disk: `spill ls`, `deadletter ls` and `deadletter replay [FILE…]`
// (docs/operations.md). They read ingest.data_dir from the same configuration as serve.

const spillUsage = `usage: adtracker spill ls [--config FILE]
  lists the spill segments under ingest.data_dir/spill: records and events waiting for replay, bytes, the ack position, damage.
  Read-only and lock-free: safe while the server runs.
`

const deadletterUsage = `usage: adtracker deadletter ls [--config FILE]
       adtracker deadletter replay [--config FILE] [FILE...]
  ls lists the batches in ingest.data_dir/deadletter (refused by ClickHouse or quarantined) with the first line of their error.
  replay inserts the given files (all when none is given) into ClickHouse, skipping events already stored, and removes each file
  once stored. Safe while the server runs; two replays at once are refused.
`

// subcommand splits "NAME VERB args…" and sets the configuration up; it returns the env and the positional arguments.
func subcommand(name, usage string, args []string, verbs ...string) (*env, string, []string, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, usage)
		return nil, "", nil, errLogged
	}
	verb := args[0]
	if !slices.Contains(verbs, verb) {
		fmt.Fprintf(os.Stderr, "adtracker %s: unknown command %q\n\n%s", name, verb, usage)
		return nil, "", nil, errLogged
	}
	var fs *flag.FlagSet
	e, err := setup(name+" "+verb, args[1:], func(f *flag.FlagSet) { fs = f })
	if err != nil {
		return nil, "", nil, err
	}
	return e, verb, fs.Args(), nil
}

func spillCmd(args []string) error {
	e, _, _, err := subcommand("spill", spillUsage, args, "ls")
	if err != nil {
		return err
	}
	if err := spillLs(os.Stdout, filepath.Join(e.cfg.Ingest.DataDir, "spill")); err != nil {
		e.log.Error("spill ls failed", zap.Error(err))
		return errLogged
	}
	return nil
}

// spillLs prints what spill.Inspect finds, with the events of each segment's records.
func spillLs(w io.Writer, dir string) error {
	type segCount struct{ events, undecodable int }
	counts := map[string]*segCount{}
	var b event.Batch
	r, err := spill.Inspect(dir, func(seg string, rec []byte) {
		c := counts[seg]
		if c == nil {
			c = &segCount{}
			counts[seg] = c
		}
		if b.UnmarshalRecord(rec) != nil {
			c.undecodable++
			return
		}
		c.events += b.N
	})
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(w, "spill %s: does not exist (nothing was ever spilled)\n", dir)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "spill %s\n", dir)
	if r.AckOK {
		fmt.Fprintf(w, "acked up to %s (segment:offset)\n", r.Ack)
	} else {
		fmt.Fprintf(w, "ack file missing or damaged: the server replays from the oldest segment, checking what is stored (%s)\n", r.Ack)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEGMENT\tBYTES\tRECORDS\tEVENTS\tUNDECODABLE\tCORRUPT_BYTES\tTAIL_BYTES")
	events, undecodable := 0, 0
	for _, s := range r.Segments {
		c := counts[s.Name]
		if c == nil {
			c = &segCount{}
		}
		events += c.events
		undecodable += c.undecodable
		corrupt := fmt.Sprint(s.CorruptBytes)
		if s.BadHeader {
			corrupt += " (bad header)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%d\n", s.Name, s.Bytes, s.Records, c.events, c.undecodable, corrupt, s.TailBytes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "total: %d segments, %d bytes; %d records waiting with %d events\n", len(r.Segments), r.Bytes, r.Records, events)
	if r.CorruptBytes > 0 || r.MissingSegments > 0 || undecodable > 0 || !r.AckOK {
		fmt.Fprintf(w, "damage: %d corrupt bytes in %d segments, %d missing segments, %d undecodable records (their events are lost)\n",
			r.CorruptBytes, r.CorruptRegions, r.MissingSegments, undecodable)
	} else {
		fmt.Fprintln(w, "damage: none")
	}
	return nil
}

func deadletterCmd(args []string) error {
	e, verb, files, err := subcommand("deadletter", deadletterUsage, args, "ls", "replay")
	if err != nil {
		return err
	}
	dataDir := e.cfg.Ingest.DataDir
	switch verb {
	case "ls":
		if len(files) > 0 {
			fmt.Fprint(os.Stderr, deadletterUsage)
			return errLogged
		}
		if err := deadletterLs(os.Stdout, dataDir); err != nil {
			e.log.Error("deadletter ls failed", zap.Error(err))
			return errLogged
		}
		return nil
	}
	paths, err := resolveDeadLetters(dataDir, files)
	if err != nil {
		e.log.Error("deadletter replay", zap.Error(err))
		return errLogged
	}
	// The replay's inserts carry a node id of their own: a serve process running beside it treats inserts under its own id from an
	// earlier process as possibly still committing (and may kill them), which the replay's are not.
	nodeID, err := chstore.NodeID(e.cfg.ClickHouse.NodeID, dataDir)
	if err != nil {
		e.log.Error("clickhouse node id", zap.Error(err))
		return errLogged
	}
	e.cfg.ClickHouse.NodeID = nodeID[:min(len(nodeID), 64-len("_replay"))] + "_replay"
	ctx := context.Background()
	ch, err := e.openClickHouse(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	res, err := pipeline.ReplayDeadLetters(ctx, dataDir, chstore.NewSink(ch), paths)
	failed := printReplay(os.Stdout, res)
	if err != nil {
		e.log.Error("deadletter replay stopped", zap.Error(err))
		return errLogged
	}
	if failed > 0 {
		return errLogged
	}
	return nil
}

func deadletterLs(w io.Writer, dataDir string) error {
	files, err := pipeline.ListDeadLetters(dataDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "dead letters in %s\n", filepath.Join(dataDir, pipeline.DeadLetterDir))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tEVENTS\tBYTES\tERROR")
	total := 0
	for _, f := range files {
		rows, msg := fmt.Sprint(f.Rows), f.Error
		if f.Rows < 0 {
			rows, msg = "damaged", f.Damage+"; "+f.Error // replay refuses it too: nothing in it is inserted
		} else {
			total += f.Rows
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", filepath.Base(f.Path), rows, f.Bytes, msg)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "total: %d files, %d events\n", len(files), total)
	return nil
}

// resolveDeadLetters accepts paths or bare names of files in the dead-letter directory.
func resolveDeadLetters(dataDir string, files []string) ([]string, error) {
	var out []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			out = append(out, f)
			continue
		}
		in := filepath.Join(dataDir, pipeline.DeadLetterDir, filepath.Base(f))
		if _, err := os.Stat(in); err != nil {
			return nil, fmt.Errorf("%s: no such dead-letter file (nor %s)", f, in)
		}
		out = append(out, in)
	}
	return out, nil
}

// printReplay reports each file and returns how many failed.
func printReplay(w io.Writer, res []pipeline.ReplayResult) int {
	failed, stored := 0, 0
	for _, r := range res {
		if r.Err != nil {
			failed++
			fmt.Fprintf(w, "failed  %s: %v\n", r.Path, r.Err)
			continue
		}
		stored += r.Rows
		fmt.Fprintf(w, "stored  %s: %d events (those already in ClickHouse skipped); file removed\n", r.Path, r.Rows)
	}
	fmt.Fprintf(w, "replayed %d files: %d events sent, %d files failed\n", len(res)-failed, stored, failed)
	return failed
}
