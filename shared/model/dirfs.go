package model

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// A repository in a directory (Load) is os.DirFS with one addition: its config files (and
// karma.json, the account files) are read with one open each that follows no symbolic link (readConfig, dirfs_unix.go; other systems
// read with fs.ReadFile). discover has refused links and special files already (Lstat, before
// anything is opened); the open refuses again whatever took a file's place since — a link it
// would otherwise follow, a FIFO it would block on — and, on Linux (openat2's
// RESOLVE_NO_SYMLINKS, dirfs_linux.go), a folder on the way swapped for a link; on macOS, or
// where openat2 is missing, only the file itself is checked (O_NOFOLLOW). The read costs five
// system calls (open, fstat, the read of the file and the one that finds its end, close) and no
// os.File, where fs.ReadFile on os.DirFS makes ten (its os.File sets the file non-blocking,
// tries to register it with the poller and sets it back: four fcntl and a failing epoll_ctl):
// about 3 µs less a file (BenchmarkReadConfig). The floor of the build (floor_bench_test.go)
// still reads with os.ReadFile, as the program of issue 12 does.

// dirFS is the repository in directory root: os.DirFS(root), its methods passed through so that
// fs.Lstat, fs.ReadDir and the others behave as on os.DirFS.
type dirFS struct {
	fs.FS // os.DirFS(root)
	// real is root with the symbolic links on its way resolved (filepath.EvalSymlinks): where
	// the repository starts, and below which readConfig follows none.
	real string
}

func newDirFS(root string) dirFS {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		real = root // (not there: every read fails, as through os.DirFS)
	}
	return dirFS{FS: os.DirFS(root), real: real}
}

func (d dirFS) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(d.FS, name) }
func (d dirFS) ReadFile(name string) ([]byte, error)       { return fs.ReadFile(d.FS, name) }
func (d dirFS) Stat(name string) (fs.FileInfo, error)      { return fs.Stat(d.FS, name) }
func (d dirFS) Lstat(name string) (fs.FileInfo, error)     { return fs.Lstat(d.FS, name) }
func (d dirFS) ReadLink(name string) (string, error)       { return fs.ReadLink(d.FS, name) }

// configReader is a file system that reads a config file its own way (dirFS).
type configReader interface {
	// readConfig reads the regular file name (slash-separated, relative), refusing a symbolic
	// link; the bytes are the caller's.
	readConfig(name string) ([]byte, error)
}

// errLink refuses a symbolic link wherever it stands, errNotRegular a special file where a
// regular one is read.
var (
	errLink       = errors.New("a symbolic link: refused (Karma does not follow links, whose target could lie outside the repository)")
	errNotRegular = errors.New("not a regular file")
	errSpecial    = errors.New("a submodule or special file, not a folder: refused (a submodule's content is not part of the commit, and Karma deploys only what the commit holds)")
)

// readConfigFile reads file name of a repository's fsys (a config.json, karma.json, an account
// file): through its readConfig when it has one, else with fs.ReadFile.
func readConfigFile(fsys fs.FS, name string) ([]byte, error) {
	if cr, ok := fsys.(configReader); ok {
		return cr.readConfig(name)
	}
	return fs.ReadFile(fsys, name)
}
