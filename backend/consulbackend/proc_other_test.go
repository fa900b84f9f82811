//go:build !linux

package consulbackend

import "os/exec"

// killWithParent does nothing here: the agent is stopped by the test's
// cleanup.
func killWithParent(*exec.Cmd) {}
