package embedded

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// processStart returns the identity of process pid's start: the boot time and the process's
// start time (sysctl kern.boottime and kern.proc.pid). A zombie counts as no process.
func processStart(pid int) (string, error) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if errors.Is(err, unix.ESRCH) || (err == nil && int(kp.Proc.P_pid) != pid) {
		return "", errNoProcess
	} else if err != nil {
		return "", err
	}
	if kp.Proc.P_stat == 5 { // SZOMB
		return "", errNoProcess
	}
	boot, _ := unix.SysctlTimeval("kern.boottime")
	start := kp.Proc.P_starttime
	return fmt.Sprintf("%d.%06d/%d.%06d", boot.Sec, boot.Usec, start.Sec, start.Usec), nil
}

// pidNamespace is "": macOS has no pid namespaces.
func pidNamespace() string { return "" }
