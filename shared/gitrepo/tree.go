package gitrepo

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"sort"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// ErrSymlink refuses a symbolic link: its target may lie outside the repository or the
// commit's tree (a secrets file, say), so Karma never follows one.
var ErrSymlink = errors.New("a symbolic link (Karma does not follow links: the target could lie outside the repository)")

// ErrSubmodule refuses a submodule: its content is not part of the commit's tree.
var ErrSubmodule = errors.New("a submodule (its content is not part of this commit)")

// TreeFS is a commit's tree as an io/fs file system: ReadDir, ReadFile, Stat and Lstat read git
// objects, never a working tree, so what is read is byte for byte what the commit holds.
// Symbolic links are reported by Lstat and ReadDir (type fs.ModeSymlink) and refused by Open,
// ReadFile and Stat with ErrSymlink; submodules are refused with ErrSubmodule.
//
// It is safe for concurrent use: go-git's object storage is not, so every object read holds
// the lock of the repository it came from, and decoded trees are cached.
type TreeFS struct {
	mu    *sync.Mutex // the repository's lock
	s     storer.EncodedObjectStorer
	when  time.Time // the commit's time: the ModTime of every entry
	label string    // e.g. "repo@abc123" for errors

	cacheMu sync.Mutex
	trees   map[string]*object.Tree // by directory path ("." = root)
}

var (
	_ fs.ReadDirFS  = (*TreeFS)(nil)
	_ fs.ReadFileFS = (*TreeFS)(nil)
	_ fs.StatFS     = (*TreeFS)(nil)
	_ fs.ReadLinkFS = (*TreeFS)(nil)
)

func newTreeFS(mu *sync.Mutex, s storer.EncodedObjectStorer, root *object.Tree, when time.Time, label string) *TreeFS {
	return &TreeFS{mu: mu, s: s, when: when, label: label, trees: map[string]*object.Tree{".": root}}
}

// String names the tree (repository and commit).
func (t *TreeFS) String() string { return t.label }

// tree returns the decoded tree of directory dir.
func (t *TreeFS) tree(dir string) (*object.Tree, error) {
	t.cacheMu.Lock()
	tr, ok := t.trees[dir]
	t.cacheMu.Unlock()
	if ok {
		return tr, nil
	}
	parent, err := t.tree(path.Dir(dir))
	if err != nil {
		return nil, err
	}
	e, err := entry(parent, path.Base(dir))
	if err != nil {
		return nil, err
	}
	switch e.Mode {
	case filemode.Dir:
	case filemode.Symlink:
		return nil, ErrSymlink
	case filemode.Submodule:
		return nil, ErrSubmodule
	default:
		return nil, errors.New("not a directory")
	}
	t.mu.Lock()
	tr, err = object.GetTree(t.s, e.Hash)
	t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	t.cacheMu.Lock()
	t.trees[dir] = tr
	t.cacheMu.Unlock()
	return tr, nil
}

func entry(tr *object.Tree, name string) (*object.TreeEntry, error) {
	// Entries are sorted by git's order (directories as if they ended in '/'): search linearly
	// for small trees, which is what config folders are.
	for i := range tr.Entries {
		if tr.Entries[i].Name == name {
			return &tr.Entries[i], nil
		}
	}
	return nil, fs.ErrNotExist
}

// lstat finds name's entry without following anything.
func (t *TreeFS) lstat(op, name string) (*object.TreeEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return &object.TreeEntry{Name: ".", Mode: filemode.Dir}, nil
	}
	parent, err := t.tree(path.Dir(name))
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	e, err := entry(parent, path.Base(name))
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return e, nil
}

// Lstat describes name without following a symbolic link.
func (t *TreeFS) Lstat(name string) (fs.FileInfo, error) {
	e, err := t.lstat("lstat", name)
	if err != nil {
		return nil, err
	}
	return t.info(e, name)
}

// Stat describes name; a symbolic link or submodule is refused.
func (t *TreeFS) Stat(name string) (fs.FileInfo, error) {
	e, err := t.lstat("stat", name)
	if err != nil {
		return nil, err
	}
	if err := refused(e); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return t.info(e, name)
}

// ReadLink returns a symbolic link's target (read, never followed).
func (t *TreeFS) ReadLink(name string) (string, error) {
	e, err := t.lstat("readlink", name)
	if err != nil {
		return "", err
	}
	if e.Mode != filemode.Symlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	data, err := t.blob(e.Hash)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(data), nil
}

func refused(e *object.TreeEntry) error {
	switch e.Mode {
	case filemode.Symlink:
		return ErrSymlink
	case filemode.Submodule:
		return ErrSubmodule
	}
	return nil
}

// ReadFile returns the blob at name.
func (t *TreeFS) ReadFile(name string) ([]byte, error) {
	e, err := t.lstat("read", name)
	if err != nil {
		return nil, err
	}
	if err := refused(e); err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	if e.Mode == filemode.Dir {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	data, err := t.blob(e.Hash)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return data, nil
}

func (t *TreeFS) blob(h plumbing.Hash) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, err := object.GetBlob(t.s, h)
	if err != nil {
		return nil, err
	}
	r, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	buf := make([]byte, 0, b.Size)
	w := bytes.NewBuffer(buf)
	if _, err := io.Copy(w, r); err != nil {
		return nil, err
	}
	return w.Bytes(), nil
}

// ReadDir lists a directory, sorted by name. Symbolic links and submodules are listed with
// their type so that callers can refuse them by name.
func (t *TreeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	tr, err := t.tree(name)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, 0, len(tr.Entries))
	for i := range tr.Entries {
		e := &tr.Entries[i]
		out = append(out, dirEntry{t: t, e: e, dir: name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// Open opens a file or directory (symbolic links and submodules are refused).
func (t *TreeFS) Open(name string) (fs.File, error) {
	e, err := t.lstat("open", name)
	if err != nil {
		return nil, err
	}
	if err := refused(e); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	info, err := t.info(e, name)
	if err != nil {
		return nil, err
	}
	if e.Mode == filemode.Dir {
		entries, err := t.ReadDir(name)
		if err != nil {
			return nil, err
		}
		return &openDir{info: info, entries: entries}, nil
	}
	data, err := t.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return &openFile{info: info, r: bytes.NewReader(data)}, nil
}

func (t *TreeFS) info(e *object.TreeEntry, name string) (fs.FileInfo, error) {
	fi := fileInfo{name: path.Base(name), when: t.when, size: -1, t: t, hash: e.Hash}
	switch e.Mode {
	case filemode.Dir:
		fi.mode = fs.ModeDir | 0o755
	case filemode.Symlink:
		fi.mode = fs.ModeSymlink | 0o777
	case filemode.Submodule:
		fi.mode = fs.ModeIrregular
	case filemode.Executable:
		fi.mode = 0o755
	default:
		fi.mode = 0o644
	}
	if !fi.mode.IsRegular() {
		fi.size = 0
	}
	return fi, nil
}

// fileInfo describes an entry; a file's size is read only when asked for (most callers only
// want the type).
type fileInfo struct {
	name string
	size int64 // -1: not read yet
	mode fs.FileMode
	when time.Time
	t    *TreeFS
	hash plumbing.Hash
}

func (f fileInfo) Name() string { return f.name }
func (f fileInfo) Size() int64 {
	if f.size >= 0 {
		return f.size
	}
	f.t.mu.Lock()
	defer f.t.mu.Unlock()
	size, err := f.t.s.EncodedObjectSize(f.hash)
	if err != nil {
		return 0
	}
	return size
}
func (f fileInfo) Mode() fs.FileMode  { return f.mode }
func (f fileInfo) ModTime() time.Time { return f.when }
func (f fileInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fileInfo) Sys() any           { return nil }

type dirEntry struct {
	t   *TreeFS
	e   *object.TreeEntry
	dir string
}

func (d dirEntry) Name() string { return d.e.Name }
func (d dirEntry) IsDir() bool  { return d.e.Mode == filemode.Dir }
func (d dirEntry) Type() fs.FileMode {
	switch d.e.Mode {
	case filemode.Dir:
		return fs.ModeDir
	case filemode.Symlink:
		return fs.ModeSymlink
	case filemode.Submodule:
		return fs.ModeIrregular
	}
	return 0
}
func (d dirEntry) Info() (fs.FileInfo, error) { return d.t.info(d.e, path.Join(d.dir, d.e.Name)) }

type openFile struct {
	info fs.FileInfo
	r    *bytes.Reader
}

func (f *openFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *openFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *openFile) Close() error               { return nil }

type openDir struct {
	info    fs.FileInfo
	entries []fs.DirEntry
	off     int
}

func (d *openDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *openDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.Name(), Err: errors.New("is a directory")}
}
func (d *openDir) Close() error { return nil }
func (d *openDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.off += n
	return rest[:n], nil
}

// Hash is the git object id of the tree or blob at name ("." = the commit's tree); it changes
// exactly when the content under name does.
func (t *TreeFS) Hash(name string) (string, error) {
	if name == "." {
		tr, err := t.tree(".")
		if err != nil {
			return "", err
		}
		return tr.Hash.String(), nil
	}
	e, err := t.lstat("hash", name)
	if err != nil {
		return "", err
	}
	return e.Hash.String(), nil
}
