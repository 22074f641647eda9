//go:build !unix

package spill

import "os"

// lockDir only creates the lock file where flock is unavailable: one process per
// directory is then the operator's job.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

func unlockDir(f *os.File) {
	if f != nil {
		f.Close()
	}
}
