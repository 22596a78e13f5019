package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/narrate/narrate/db/dbtest"
)

// TestMakeRunExitsZeroAfterCtrlC runs the README's `make run` at a
// terminal (a pseudo-terminal this test holds), waits until the server is
// ready, types Ctrl-C, and expects make itself to exit 0: the server takes
// the terminal's foreground, so the interrupt reaches it alone and make
// does not re-raise it (which made `make run` exit 130).
func TestMakeRunExitsZeroAfterCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server through make")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	t.Parallel()
	tmp := tempDir(t, "narrate-make-run-", true)
	master, slave := openPTY(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	run := exec.Command("make", "--no-print-directory", "-C", root, "run")
	run.Env = localEnv(filepath.Join(tmp, "data"), port)
	run.Stdin, run.Stdout, run.Stderr = slave, slave, slave
	// A session of its own with the terminal as its controlling terminal:
	// make starts in the terminal's foreground, as from a shell.
	run.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	out := &dbtest.Buffer{}
	// The copy ends when the last holder of the terminal's other end has
	// closed it: a read of the master side then fails with EIO.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(out, master)
	}()
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("terminal:\n%s", out.String())
		}
	})

	waitReady(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/readyz", exited)
	if _, err := master.Write([]byte{3}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	wantCleanExit(t, exited, 60*time.Second, "Ctrl-C (make run)", out, drained)
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var unlock int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		t.Fatal(errno)
	}
	var n uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 {
		t.Fatal(errno)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, slave
}
