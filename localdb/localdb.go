// Package localdb runs a PostgreSQL cluster from the PostgreSQL binaries
// installed on the machine.
//
// The dev server uses it when DATABASE_URL is unset, keeping the cluster
// under DATA_DIR across runs; tests use it with Options.Ephemeral, which turns
// off durability for speed.
//
// PostgreSQL refuses to run as root. When the calling process is root,
// localdb runs initdb, pg_ctl and the server as the "postgres" system user
// and hands the cluster directory to that user, so the directory and every
// directory above it must be reachable by "postgres". Directories made by
// t.TempDir() and anything under /root are not: tests should use
// os.MkdirTemp("", ...) under /tmp instead.
package localdb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverUser is the system account that runs PostgreSQL when the caller is root.
const serverUser = "postgres"

// Superuser is the name of the cluster's bootstrap superuser, given to initdb.
const Superuser = "postgres"

// startAttempts bounds how often Start picks a new free port after losing a
// race for the one it picked to another process.
const startAttempts = 3

// maxSocketPath is the usable length of a Unix socket path (sun_path is 108
// bytes on Linux, including the terminating NUL).
const maxSocketPath = 107

// ErrUnreachable is returned (wrapped) by Start, when running as root, for
// a directory the server user cannot reach.
var ErrUnreachable = errors.New("localdb: directory not reachable by the server user")

// Options configures Start.
type Options struct {
	// Dir holds the cluster: the data directory Dir/pgdata, the socket
	// directory Dir/run and the server log Dir/postgres.log. It is created if
	// missing. When running as root it must be reachable by the "postgres"
	// system user (see the package documentation).
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// BinDir holds initdb, pg_ctl and postgres. Empty means discover it:
	// $PG_BINDIR, else `pg_config --bindir`, else the highest version under
	// /usr/lib/postgresql/*/bin that contains initdb.
	BinDir string
	// Ephemeral trades durability for speed (fsync, synchronous_commit and
	// full_page_writes off); meant for tests, whose data may be lost on a crash.
	Ephemeral bool
	// Temporary ties the cluster to the calling process: should the process
	// exit without calling Stop (a panicking test, a killed test binary), a
	// watchdog process stops the server and removes Dir. Tests set it, since
	// a crash skips their deferred cleanup and would leave servers running.
	Temporary bool
	// Reuse attaches to a server already running on this data directory
	// (another process's, say a dev server while `server token` runs)
	// instead of stopping it; Stop then leaves it running, since this
	// process did not start it.
	Reuse bool
	// Logger receives progress messages; nil means slog.Default().
	Logger *slog.Logger
}

// StartError reports a server that failed to initialise or start. Its message
// includes the end of the PostgreSQL log, which usually says why.
type StartError struct {
	// Err is the underlying failure, including the failing command's output.
	Err error
	// LogTail holds the last lines the server wrote to its log file.
	LogTail string
}

// Error implements error.
func (e *StartError) Error() string {
	if e.LogTail == "" {
		return fmt.Sprintf("localdb: start postgres: %v", e.Err)
	}
	return fmt.Sprintf("localdb: start postgres: %v\npostgres log (tail):\n%s", e.Err, e.LogTail)
}

// Unwrap returns the underlying failure.
func (e *StartError) Unwrap() error { return e.Err }

// Cluster is a running PostgreSQL server started by Start.
type Cluster struct {
	dir         string
	pgdata      string
	sockDir     string
	tempSockDir bool
	logFile     string
	binDir      string
	port        int
	ephemeral   bool
	cred        *syscall.Credential
	logger      *slog.Logger

	mu       sync.Mutex
	stopped  bool
	watchdog *watchdog
}

// Start initialises the cluster in opts.Dir if it holds none yet and starts
// the server, returning once it accepts connections. A server left running on
// the same data directory by an earlier, crashed run is stopped first.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.Dir == "" {
		return nil, errors.New("localdb: Options.Dir is required")
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("localdb: invalid port %d", opts.Port)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("localdb: resolve dir: %w", err)
	}
	c := &Cluster{
		dir:       dir,
		pgdata:    filepath.Join(dir, "pgdata"),
		sockDir:   filepath.Join(dir, "run"),
		logFile:   filepath.Join(dir, "postgres.log"),
		binDir:    opts.BinDir,
		ephemeral: opts.Ephemeral,
		logger:    opts.Logger,
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if opts.Reuse {
		// Checked before anything is made: a reused server needs no
		// binaries, directories or watchdog of this process's.
		if _, port, ok := c.running(); ok {
			c.port, c.stopped = port, true
			c.logger.Info("reusing running postgres", "dir", c.dir, "port", port)
			return c, nil
		}
	}
	if c.binDir == "" {
		if c.binDir, err = defaultBinFinder().find(ctx); err != nil {
			return nil, err
		}
	}
	if os.Geteuid() == 0 {
		if c.cred, err = lookupCredential(serverUser); err != nil {
			return nil, err
		}
	}
	if err := c.prepareDirs(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.releaseWatchdog()
			c.removeTempSockDir()
		}
	}()
	if err := c.initdb(ctx); err != nil {
		return nil, err
	}
	if err := c.stopStale(ctx); err != nil {
		return nil, err
	}
	if opts.Temporary {
		// Started before the server so that a crash while it starts is
		// covered too.
		if c.watchdog, err = c.startWatchdog(); err != nil {
			return nil, err
		}
	}
	if err := c.start(ctx, opts.Port); err != nil {
		return nil, err
	}
	return c, nil
}

// Port returns the TCP port the server listens on at 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// AdminURL returns a connection URL for database dbname as the superuser.
func (c *Cluster) AdminURL(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Stop shuts the server down with pg_ctl's fast mode: open sessions are
// disconnected and in-flight transactions rolled back. Calling Stop again
// after it succeeded does nothing.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	if err := c.pgCtlStop(ctx); err != nil {
		return err
	}
	c.stopped = true
	c.releaseWatchdog()
	c.removeTempSockDir()
	c.logger.Info("postgres stopped", "dir", c.dir)
	return nil
}

func (c *Cluster) pgCtlStop(ctx context.Context) error {
	out, err := c.command(ctx, "pg_ctl", "stop", "-D", c.pgdata, "-m", "fast", "-w", "-t", "60").CombinedOutput()
	if err != nil {
		return fmt.Errorf("localdb: pg_ctl stop: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func lookupCredential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("localdb: running as root needs the %q system user: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("localdb: uid of %q: %w", name, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("localdb: gid of %q: %w", name, err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	// Without explicit groups the child would drop all supplementary groups,
	// which the access check in prepareDirs would then have to ignore.
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(g))
			}
		}
	}
	return cred, nil
}

// prepareDirs creates the cluster and socket directories, hands them to the
// server user when running as root, and checks that user can reach them.
func (c *Cluster) prepareDirs() error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("localdb: create dir: %w", err)
	}
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("localdb: chown dir: %w", err)
		}
		if err := checkReachable(c.dir, c.cred); err != nil {
			return err
		}
	}
	// The socket path is sockDir/.s.PGSQL.<port>.lock at its longest; a deep
	// Dir would overflow it, so such clusters put their socket under /tmp.
	if len(c.sockDir)+len("/.s.PGSQL.65535.lock") > maxSocketPath {
		d, err := os.MkdirTemp("", "localdb-sock-")
		if err != nil {
			return fmt.Errorf("localdb: create socket dir: %w", err)
		}
		c.sockDir, c.tempSockDir = d, true
	} else if err := os.MkdirAll(c.sockDir, 0o700); err != nil {
		return fmt.Errorf("localdb: create socket dir: %w", err)
	}
	if c.cred != nil {
		if err := os.Chown(c.sockDir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			c.removeTempSockDir()
			return fmt.Errorf("localdb: chown socket dir: %w", err)
		}
	}
	return nil
}

func (c *Cluster) removeTempSockDir() {
	if c.tempSockDir {
		_ = os.RemoveAll(c.sockDir)
	}
}

// checkReachable reports whether the user in cred may search every directory
// above dir, so a root caller learns why up front instead of from initdb.
func checkReachable(dir string, cred *syscall.Credential) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("localdb: stat %s: %w", d, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		var bit os.FileMode
		switch {
		case st.Uid == cred.Uid:
			bit = 0o100
		case st.Gid == cred.Gid || slices.Contains(cred.Groups, st.Gid):
			bit = 0o010
		default:
			bit = 0o001
		}
		if fi.Mode().Perm()&bit == 0 {
			return fmt.Errorf("%w: %s is not reachable by the %q user (%s has mode %v); use a directory such as one from os.MkdirTemp under /tmp",
				ErrUnreachable, dir, serverUser, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// command builds an invocation of one of the PostgreSQL binaries, run as the
// server user when needed, from within the cluster directory (the caller's
// working directory may be unreadable to that user) and without the caller's
// PG* environment, which could otherwise point pg_ctl at another server.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func childEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
}

// initdb creates the data directory unless it already holds a cluster.
func (c *Cluster) initdb(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.pgdata, "PG_VERSION")); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("localdb: check data dir: %w", err)
	}
	args := []string{"-D", c.pgdata, "-U", Superuser, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"}
	if c.ephemeral {
		args = append(args, "--no-sync")
	}
	c.logger.Info("initialising postgres cluster", "dir", c.pgdata)
	out, err := c.command(ctx, "initdb", args...).CombinedOutput()
	if err != nil {
		return &StartError{Err: fmt.Errorf("initdb: %w: %s", err, bytes.TrimSpace(out))}
	}
	return nil
}

type procState int

const (
	procGone procState = iota
	procPostgres
	procOther
)

// stopStale stops a server left running on this data directory by an earlier
// run, so that a crashed dev server recovers on its next start. A pid file
// naming a process that is not PostgreSQL (the pid was reused, as happens
// after a container restart) is removed, since the server would otherwise
// refuse to start.
func (c *Cluster) stopStale(ctx context.Context) error {
	pid, _, err := c.readPidFile()
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, errTornPidFile) {
		// A torn pid file: the server itself treats it as stale.
		return nil
	}
	if err != nil {
		return err
	}
	switch processState(pid) {
	case procGone:
		return nil
	case procOther:
		pidFile := c.pidFile()
		c.logger.Warn("removing stale postgres pid file", "pid", pid, "file", pidFile)
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("localdb: remove stale pid file: %w", err)
		}
		return nil
	default:
		c.logger.Warn("stopping postgres left running by an earlier run", "pid", pid, "dir", c.pgdata)
		return c.pgCtlStop(ctx)
	}
}

// Running reports the pid and port of a PostgreSQL server running on the
// cluster in dir (the Dir a Start was given), as its pid file tells, for
// other processes that want to connect to it.
func Running(dir string) (pid, port int, ok bool) {
	return (&Cluster{pgdata: filepath.Join(dir, "pgdata")}).running()
}

func (c *Cluster) running() (pid, port int, ok bool) {
	pid, port, err := c.readPidFile()
	if err != nil || port == 0 || processState(pid) != procPostgres {
		return 0, 0, false
	}
	return pid, port, true
}

// FallbackDir is where a server keeps the cluster belonging to dataDir
// when, running as root, the postgres user cannot reach dataDir (a checkout
// under /root, say): a directory of its own under /var/tmp, named after
// dataDir so each dataDir keeps one cluster across runs.
func FallbackDir(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return filepath.Join("/var/tmp", "narrate-"+hex.EncodeToString(sum[:6]))
}

// errTornPidFile reports a pid file without a valid pid on its first line.
var errTornPidFile = errors.New("localdb: torn pid file")

func (c *Cluster) pidFile() string { return filepath.Join(c.pgdata, "postmaster.pid") }

// readPidFile reads the pid file PostgreSQL keeps in its data directory
// (line 1: pid, line 4: port). The port is 0 when the file does not hold one
// yet, as while the server starts.
func (c *Cluster) readPidFile() (pid, port int, err error) {
	data, err := os.ReadFile(c.pidFile())
	if err != nil {
		return 0, 0, fmt.Errorf("localdb: read pid file: %w", err)
	}
	lines := strings.Split(string(data), "\n")
	if pid, err = strconv.Atoi(strings.TrimSpace(lines[0])); err != nil || pid <= 0 {
		return 0, 0, errTornPidFile
	}
	if len(lines) >= 4 {
		port, _ = strconv.Atoi(strings.TrimSpace(lines[3]))
	}
	return pid, max(port, 0), nil
}

func processState(pid int) procState {
	comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err == nil {
		switch strings.TrimSpace(string(comm)) {
		case "postgres", "postmaster":
			return procPostgres
		default:
			return procOther
		}
	}
	if _, statErr := os.Stat("/proc/self"); statErr == nil {
		return procGone
	}
	// Without /proc, fall back to probing the pid; EPERM still means alive.
	if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
		return procPostgres
	}
	return procGone
}

// start runs pg_ctl start, retrying with another free port when port is 0 and
// the one picked was taken in the meantime.
func (c *Cluster) start(ctx context.Context, port int) error {
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		p := port
		if p == 0 {
			var err error
			if p, err = freePort(); err != nil {
				return fmt.Errorf("localdb: pick port: %w", err)
			}
		}
		err := c.startOnce(ctx, p)
		if err == nil {
			c.port = p
			c.logger.Info("postgres started", "dir", c.dir, "port", p)
			return nil
		}
		lastErr = err
		var se *StartError
		if port != 0 || ctx.Err() != nil || !errors.As(err, &se) || !portTaken(se.LogTail) {
			break
		}
		c.logger.Warn("postgres port taken, retrying with another", "port", p)
	}
	return lastErr
}

func (c *Cluster) startOnce(ctx context.Context, port int) error {
	logOffset := fileSize(c.logFile)
	opts := []string{
		"-p", strconv.Itoa(port),
		"-k", shellQuote(gucQuote(c.sockDir)),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "max_connections=300",
	}
	if c.ephemeral {
		opts = append(opts,
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
		)
	}
	out, err := c.command(ctx, "pg_ctl", "start", "-D", c.pgdata, "-w", "-t", "60",
		"-l", c.logFile, "-o", strings.Join(opts, " ")).CombinedOutput()
	if err == nil {
		return nil
	}
	startErr := &StartError{
		Err:     fmt.Errorf("pg_ctl start: %w: %s", err, bytes.TrimSpace(out)),
		LogTail: logTail(c.logFile, logOffset, 30),
	}
	// pg_ctl may have been killed by ctx while the server came up; stop it
	// so the failed start leaves nothing running.
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := os.Stat(c.pidFile()); err == nil {
		_ = c.command(stopCtx, "pg_ctl", "stop", "-D", c.pgdata, "-m", "immediate", "-w").Run()
	}
	return startErr
}

func portTaken(logTail string) bool {
	return strings.Contains(logTail, "could not bind") ||
		strings.Contains(logTail, "could not create any TCP/IP sockets") ||
		strings.Contains(logTail, "already in use")
}

// freePort asks the kernel for an unused port. Another process may take it
// before the server binds it; start retries in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// gucQuote quotes a directory for unix_socket_directories, a comma-separated
// list in which names with spaces or commas must be double-quoted.
func gucQuote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// shellQuote quotes s for /bin/sh, through which pg_ctl passes its -o options.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logTail returns the last n lines the log gained after offset, or the last n
// lines of the whole log when nothing was added (the failure happened before
// the server wrote anything, so older lines are the best clue left).
func logTail(path string, offset int64, n int) string {
	const maxRead = 16 << 10
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	size := fi.Size()
	if offset >= size {
		offset = 0
	}
	if size-offset > maxRead {
		offset = size - maxRead
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
