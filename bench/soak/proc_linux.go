package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill a backend if the soak dies without
// stopping it (SIGKILL, a crash), so that none is left holding its port.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
