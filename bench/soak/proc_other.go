//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing where the kernel cannot tie a child's life to
// its parent's: the soak stops its backends itself on every ordinary exit.
func dieWithParent(*exec.Cmd) {}
