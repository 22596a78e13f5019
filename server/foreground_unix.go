//go:build unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"unsafe"
)

// foregroundEnv asks the server to take the terminal's foreground for
// itself; `make run` sets it. A Ctrl-C at a terminal interrupts the whole
// foreground process group: the server then stops cleanly with status 0,
// but make, in the same group, re-raises the interrupt on itself once its
// recipe ends (GNU make always does), so `make run` would exit 130 after
// every clean stop. Run in a process group of its own that holds the
// terminal's foreground, the server alone receives the Ctrl-C, and make
// reports the server's own status.
const foregroundEnv = "NARRATE_TERMINAL_FOREGROUND"

// runInForeground re-runs this command as a child in a new process group
// that it makes the terminal's foreground group, waits for it, gives the
// terminal back to the group it came from, and returns the child's exit
// status. ok is false, and nothing runs, unless foregroundEnv is set and
// standard input is the terminal whose foreground group this process is
// in (not under CI, nohup or a pipe).
func runInForeground(args []string) (status int, ok bool) {
	if os.Getenv(foregroundEnv) != "1" {
		return 0, false
	}
	tty := int(os.Stdin.Fd())
	own := syscall.Getpgrp()
	if fg, err := foregroundGroup(tty); err != nil || fg != own {
		return 0, false
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, false
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), foregroundEnv+"=0")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Foreground: true, Ctty: tty}

	// The interrupt is the child's to handle. Taking the terminal back
	// from a background group raises SIGTTOU, which would stop this
	// process.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTTOU)
	// A termination signal sent to this process (by make, say) is passed on.
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(term)
	if err := cmd.Start(); err != nil {
		return 0, false
	}
	go func() {
		for sig := range term {
			_ = cmd.Process.Signal(sig)
		}
	}()
	err = cmd.Wait()
	_ = setForegroundGroup(tty, own)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, true
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return exit.ExitCode(), true
	}
	return 1, true
}

func foregroundGroup(fd int) (int, error) {
	var pgrp int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), uintptr(syscall.TIOCGPGRP), uintptr(unsafe.Pointer(&pgrp))); errno != 0 {
		return 0, errno
	}
	return int(pgrp), nil
}

func setForegroundGroup(fd, pgrp int) error {
	p := int32(pgrp)
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), uintptr(syscall.TIOCSPGRP), uintptr(unsafe.Pointer(&p))); errno != 0 {
		return errno
	}
	return nil
}
