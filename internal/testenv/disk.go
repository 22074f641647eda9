package testenv

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size (mount's size=, e.g. "1m") on a new directory, private to root (mode 0700, as adtracker keeps its
// data dir), and unmounts it when the test ends; a failed unmount fails the test (something still holds a file there). Mounting
// needs root: elsewhere the test is skipped. For full-disk tests on a real filesystem.
func Tmpfs(tb testing.TB, size string) string {
	tb.Helper()
	dir := mountTmpfs(tb, size)
	tb.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			tb.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// TmpfsLazy is Tmpfs for tests whose other cleanups (stopping a server that keeps its files there) run after this one: it
// detaches the mount (umount -l), which the kernel finishes once the last file there is closed, and only logs a failure.
func TmpfsLazy(tb testing.TB, size string) string {
	tb.Helper()
	dir := mountTmpfs(tb, size)
	tb.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			tb.Logf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

func mountTmpfs(tb testing.TB, size string) string {
	tb.Helper()
	dir := tb.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		tb.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	return dir
}

// FillDisk creates path and writes it until its filesystem has no space left, down to the last byte: pages first, then bytes.
// Removing path gives the space back.
func FillDisk(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for _, chunk := range []int{4096, 1} {
		for {
			if _, err := f.Write(buf[:chunk]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					tb.Fatalf("fill %s: %v", path, err)
				}
				break
			}
		}
	}
}
