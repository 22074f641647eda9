package pipeline

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Everything under the data dir is 0600 (files) or 0700 (directories) — the ring file, spill segments, ack and lock files,
// dead-letter files and the dedupe file — also when the directory was created looser by an older version.
func TestDataDirModes(t *testing.T) {
	cfg := testConfig(t)
	// What an older version left: loose directories and a loose stray file.
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, "spill"), filepath.Join(cfg.Dir, DeadLetterDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, DeadLetterDir, "old.batch"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	sink := newFake()
	sink.permanent = true // dead-letter files too
	cfg.SpillMaxBytes = 0
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p, 0, 100, true)
	waitFor(t, "dead-lettered", func() bool { return p.DeadLettered.Load() == 100 })
	sink.set(func(f *fakeSink) { f.permanent, f.down = false, true })
	enqueueN(t, p, 100, 100, true)
	waitFor(t, "spilled", func() bool { return p.Spilled.Load() == 100 })
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	err = filepath.WalkDir(cfg.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, info.Mode().Perm(), want)
		}
		rel, _ := filepath.Rel(cfg.Dir, path)
		seen[filepath.Dir(rel)+"/"+filepath.Ext(rel)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"./" /* ring, dedup */, "deadletter/.batch", "deadletter/.txt", "spill/.seg"} {
		if !seen[k] {
			t.Errorf("no file like %q checked; saw %v", k, seen)
		}
	}
}
