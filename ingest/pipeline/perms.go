package pipeline

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Everything under the data dir is private to the server's user: events carry IP addresses, user agents and viewer ids.
const (
	fileMode = 0o600
	dirMode  = 0o700
)

// ensureDir creates dir (and parents) with dirMode.
func ensureDir(dir string) error { return os.MkdirAll(dir, dirMode) }

// tightenModes walks dir and removes group and other permissions from every file and directory that has any (a data dir written by
// an older version, or restored from a backup). It returns the paths it changed.
func tightenModes(dir string) ([]string, error) {
	// Through an os.Root: a path swapped for a symlink during the walk cannot make us chmod something outside dir.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var fixed []string
	err = fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // never follow or change what a link points at
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(fileMode)
		if d.IsDir() {
			want = dirMode
		}
		if info.Mode().Perm()&0o077 != 0 {
			if err := root.Chmod(rel, info.Mode().Perm()&want); err != nil {
				return err
			}
			fixed = append(fixed, filepath.Join(dir, rel))
		}
		return nil
	})
	return fixed, err
}
