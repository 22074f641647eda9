package spill

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestConcurrentAppendAndRead runs many appenders against one reader that acks as it
// goes, over small segments so rotation and deletion race with both.
func TestConcurrentAppendAndRead(t *testing.T) {
	const writers, perWriter = 8, 400
	q := open(t, t.TempDir(), Options{SegmentBytes: 2048, FsyncInterval: time.Millisecond})
	wrec := func(w, i int) []byte {
		b := binary.LittleEndian.AppendUint16(nil, uint16(w))
		b = binary.LittleEndian.AppendUint32(b, uint32(i))
		for j := range (w*31 + i) % 100 {
			b = append(b, byte(j+i))
		}
		return b
	}

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				if err := q.Append(wrec(w, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	next := make([]int, writers) // per writer, the index expected next: order is kept per appender
	read, eofAfterDone := 0, false
	for read < writers*perWriter {
		b, pos, err := q.Next()
		if errors.Is(err, io.EOF) {
			select {
			case <-done:
				if eofAfterDone {
					t.Fatalf("writers done, reader stuck at %d of %d records", read, writers*perWriter)
				}
				eofAfterDone = true
			default:
				time.Sleep(50 * time.Microsecond)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		w, i := int(binary.LittleEndian.Uint16(b)), int(binary.LittleEndian.Uint32(b[2:]))
		if w >= writers || i != next[w] || string(b) != string(wrec(w, i)) {
			t.Fatalf("read writer %d record %d, want record %d of it", w, i, next[w])
		}
		next[w]++
		read++
		if read%40 == 0 {
			if err := q.Ack(pos); err != nil {
				t.Fatal(err)
			}
		}
	}
	<-done
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if _, _, err := q.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after every record: %v", err)
	}
	if st := q.Stats(); st.Appended != writers*perWriter || st.CorruptRegions != 0 {
		t.Fatalf("stats %+v", st)
	}
}

const killEnv = "SPILL_KILL_CHILD_DIR"

// killRec is record i of the kill test: big enough that SIGKILL often lands inside write(2).
func killRec(i int) []byte {
	n := 100 + (i*7919)%40000
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b, uint64(i))
	for j := 8; j < min(n, 8+256); j++ {
		b[j] = byte(i + j)
	}
	// The filler repeats every 256 bytes, so doubling copies keep it byte(i+j).
	for k := 8 + 256; k < n; k += k - 8 {
		copy(b[k:], b[8:k])
	}
	return b
}

// TestKillRecovery appends from a child process, SIGKILLs it mid-stream, and checks that
// Open recovers every record the child had been told was appended, intact and in order.
// Three rounds in one directory also cover acks made between crashes.
func TestKillRecovery(t *testing.T) {
	if dir := os.Getenv(killEnv); dir != "" {
		killChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	acked, total := 0, 0 // records acked so far; records known to exist
	for round, killAfter := range []int{300, 1000, 2500} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillRecovery$")
		cmd.Env = append(os.Environ(), killEnv+"="+dir, "SPILL_KILL_CHILD_FROM="+strconv.Itoa(total))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		reported, killed := total, false
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			n, err := strconv.Atoi(sc.Text())
			if err != nil {
				t.Fatalf("child said %q", sc.Text())
			}
			reported = n
			if !killed && n >= total+killAfter {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child ended by itself after %d records: %v", round, reported, err)
		}

		q, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		i := acked
		var mid Position
		for {
			b, pos, err := q.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != string(killRec(i)) {
				t.Fatalf("round %d: record %d is wrong (%d bytes)", round, i, len(b))
			}
			i++
			if i == (acked+reported)/2 {
				mid = pos
			}
		}
		if i < reported {
			t.Fatalf("round %d: recovered records up to %d, child reported %d appended", round, i, reported)
		}
		if st := q.Stats(); st.CorruptRegions != 0 || st.BadAck != 0 || st.MissingSegments != 0 {
			t.Fatalf("round %d: stats %+v", round, st)
		}
		t.Logf("round %d: child reported %d, recovered %d, stats %+v", round, reported, i, q.Stats())
		// Ack half, so the next round starts after an ack.
		if mid != (Position{}) {
			if err := q.Ack(mid); err != nil {
				t.Fatal(err)
			}
			acked = (acked + reported) / 2
		}
		total = i
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func killChild(dir string) {
	from, _ := strconv.Atoi(os.Getenv("SPILL_KILL_CHILD_FROM"))
	q, err := Open(dir, Options{SegmentBytes: 1 << 20, MaxBytes: 256 << 20, FsyncInterval: 10 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := from; i < from+100000; i++ {
		err := q.Append(killRec(i))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		// Unbuffered: the parent must never see a count ahead of a completed Append.
		fmt.Fprintf(os.Stdout, "%d\n", i+1)
	}
	os.Exit(0)
}
