package loadgen

import (
	"time"

	"golang.org/x/sys/unix"
)

// The Go runtime parks idle threads in epoll_wait, whose timeout is in whole milliseconds: time.Sleep(200µs) on an idle process
// returns about a millisecond later. An open-loop schedule at 50k req/s cannot live with that, so the pacer sleeps with
// nanosleep(2) on its own thread, with the kernel's timer slack cut from 50 µs to 1 µs.

// lockPacerThread prepares the calling goroutine's thread for precise sleeps; the goroutine must end without unlocking, so the
// thread with the changed slack exits with it.
func lockPacerThread() {
	lockThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
}

// sleepPrecise sleeps d (< a few ms) with microsecond precision.
func sleepPrecise(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	_ = unix.Nanosleep(&ts, nil)
}
