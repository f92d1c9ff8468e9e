//go:build unix

package h1

import (
	"syscall"
	"time"
)

// processCPU is the user and system CPU time this process has used: what a
// benchmark reports per op, since wall time on a shared machine says more
// about the neighbours.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
