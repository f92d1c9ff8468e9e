package main

import (
	"io/fs"
	"strconv"
	"strings"
)

// The proxy collects garbage at five times its live heap (GOGC 400, see
// run), which is cheap while the heap is small; with a large one (tens of
// thousands of connections) it would let the heap grow to five times that,
// past a container's memory limit. So, when the process runs under a
// cgroup memory limit and GOMEMLIMIT is not set, the Go runtime is given a
// soft limit of 90% of it: below it, GOGC's economy; near it, the collector
// works harder instead of the kernel killing the process.

// cgroupMemoryFiles are where cgroup v2 and v1 keep the memory limit, under
// the root of the file system.
var cgroupMemoryFiles = []string{"sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory/memory.limit_in_bytes"}

// cgroupMemoryLimit returns the memory limit of the process's cgroup, read
// from fsys (the root file system), or false when there is none: no such
// file, "max", or v1's way of saying none (a number near the largest int64).
func cgroupMemoryLimit(fsys fs.FS) (int64, bool) {
	for _, name := range cgroupMemoryFiles {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0, false // "max", or unlimited in v1
		}
		return n, true
	}
	return 0, false
}

// softMemoryLimit is the GOMEMLIMIT to set for a cgroup limit.
func softMemoryLimit(cgroup int64) int64 { return cgroup / 10 * 9 }
