package consulbackend

import (
	"os/exec"
	"syscall"
)

// killWithParent has the kernel kill cmd's process when the test process
// dies, so that a test binary killed by its timeout leaves no agent.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
