//go:build linux || darwin || freebsd || netbsd || openbsd

package gitrepo

import (
	"os"
	"syscall"
)

// fileStat is the identity of the file fi describes (fileIdentity); ok is false when the file
// system gave no stat_t.
func fileStat(fi os.FileInfo, sha256 bool) (fileIdentity, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileIdentity{}, false
	}
	return fileIdentity{
		dev: uint64(st.Dev), ino: uint64(st.Ino), size: fi.Size(), mode: fi.Mode(),
		mtime: fi.ModTime().UnixNano(), ctimeNs: ctime(st), sha256: sha256,
	}, true
}
