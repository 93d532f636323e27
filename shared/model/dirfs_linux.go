package model

import (
	"errors"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// noOpenat2 is set once openat2 turned out to be missing (ENOSYS: a kernel before 5.6, or a
// seccomp filter answering so): openNoLinks then checks the last element only. A filter that
// answers EPERM instead has each open fall back on its own.
var noOpenat2 atomic.Bool

// openNoLinks opens path (one without symbolic links up to the repository's root: dirFS.real)
// refusing a symbolic link anywhere on it with ELOOP — a folder swapped for a link after
// discover listed it included — with openat2's RESOLVE_NO_SYMLINKS; where openat2 is missing,
// only at its last element (O_NOFOLLOW).
func openNoLinks(path string) (int, error) {
	if !noOpenat2.Load() {
		fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{Flags: openFlags, Resolve: unix.RESOLVE_NO_SYMLINKS})
		switch {
		case errors.Is(err, syscall.ENOSYS):
			noOpenat2.Store(true)
		case !errors.Is(err, syscall.EPERM):
			return fd, err
		}
	}
	return openLastNoLink(path)
}
