package embedded

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// processStart returns the identity of process pid's start: the boot id and the start time in
// clock ticks since boot (/proc/<pid>/stat, field 22). A zombie (killed, not yet reaped) or dead
// process counts as no process.
func processStart(pid int) (string, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) {
		return "", errNoProcess
	} else if err != nil {
		return "", err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields follow the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return "", errors.New("unreadable /proc/" + strconv.Itoa(pid) + "/stat")
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return "", errors.New("short /proc/" + strconv.Itoa(pid) + "/stat")
	}
	if state := fields[0]; state == "Z" || state == "X" {
		return "", errNoProcess
	}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(boot)) + "/" + fields[19], nil // field 22 of the whole line
}

// pidNamespace is the pid namespace of this process ("pid:[4026531836]"), "" when unreadable.
func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return ns
}
