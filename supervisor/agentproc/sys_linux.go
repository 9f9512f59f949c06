//go:build linux

package agentproc

import "syscall"

// sysProcAttr puts the agent in its own process group (so a stop reaches its
// children too) and has the kernel kill it if the supervisor dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
