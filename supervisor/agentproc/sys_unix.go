//go:build unix

package agentproc

import "syscall"

func signalGroup(pid int, sig syscall.Signal) error { return syscall.Kill(-pid, sig) }

func killGroup(pid int, sig syscall.Signal) { _ = syscall.Kill(-pid, sig) }
