package pipeline

import (
	"os"
	"path/filepath"
)

// Files under the data dir that must never be seen half-written (the duplicate window, dead-lettered batches) are written to a
// temporary name in the same directory, fsynced, and renamed into place. Open removes temporaries a killed process left behind
// (".NAME.tmp"); the file they were meant to replace is still whole.

// createTemp creates (or truncates) path's temporary file.
func createTemp(path string) (*os.File, error) {
	return os.OpenFile(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
}

// commitTemp fsyncs and closes f, a temporary from createTemp, and renames it to path; err, an earlier failure writing f, aborts
// instead. On any failure the temporary is removed.
func commitTemp(f *os.File, path string, err error) error {
	if err == nil {
		err = f.Sync()
	}
	if e := f.Close(); err == nil {
		err = e
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// writeFileAtomic writes data to path's temporary file, fsyncs it, and renames it to path.
func writeFileAtomic(path string, data []byte) error {
	f, err := createTemp(path)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return commitTemp(f, path, err)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if e := d.Close(); err == nil {
		err = e
	}
	return err
}
