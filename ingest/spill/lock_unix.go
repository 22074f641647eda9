//go:build unix

package spill

import (
	"errors"
	"os"
	"syscall"
)

// lockDir takes an exclusive flock on path: two writers interleaving frames in one
// segment would corrupt it. The kernel drops the lock when the process dies, so a
// SIGKILL never leaves the directory locked.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return f, nil
}

func unlockDir(f *os.File) {
	if f != nil {
		_ = f.Close() // closing the last descriptor drops the flock
	}
}
