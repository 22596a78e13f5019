package localdb

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"syscall"
)

// watchdogScript waits on its standard input, a pipe whose write end only the
// calling process holds. A line means the cluster was stopped cleanly; end of
// file without one means the caller died, so the script stops the server and
// removes the cluster directory and the socket directory ($3, may be empty).
const watchdogScript = `if read -r _; then exit 0; fi
"$0" stop -D "$1" -m immediate -w >/dev/null 2>&1
rm -rf -- "$2"
if [ -n "$3" ]; then rm -rf -- "$3"; fi`

// watchdog is a process that cleans up a Temporary cluster when the calling
// process exits without stopping it.
type watchdog struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func (c *Cluster) startWatchdog() (*watchdog, error) {
	tempSock := ""
	if c.tempSockDir {
		tempSock = c.sockDir
	}
	// Not bound to a context: the watchdog must outlive every caller's
	// context, and it exits by itself once its input closes.
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, filepath.Join(c.binDir, "pg_ctl"), c.pgdata, c.dir, tempSock)
	cmd.Dir = "/"
	cmd.Env = childEnv()
	// Its own process group keeps a terminal's Ctrl-C, which kills the test
	// binary, from killing the watchdog too before it has cleaned up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.cred}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("localdb: watchdog: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("localdb: start watchdog: %w", err)
	}
	return &watchdog{cmd: cmd, stdin: stdin}, nil
}

// releaseWatchdog tells the watchdog the cluster needs no cleanup and waits
// for it to exit.
func (c *Cluster) releaseWatchdog() {
	if c.watchdog == nil {
		return
	}
	_, _ = io.WriteString(c.watchdog.stdin, "stopped\n")
	_ = c.watchdog.stdin.Close()
	_ = c.watchdog.cmd.Wait()
	c.watchdog = nil
}
