package gitrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Signature is a commit's author or committer.
type Signature struct {
	Name, Email string
}

// SignatureOf turns who — "Name <email>", an email, or a user name or ARN — into a signature;
// a name without an address gets <name, spaces as dots>@karma.invalid. It refuses what would
// corrupt the commit's author line or forge lines of its message: a blank name, control
// characters (a newline among them), and angle brackets outside one "Name <email>".
func SignatureOf(who string) (Signature, error) {
	if strings.TrimSpace(who) == "" {
		return Signature{}, errors.New(`blank: give "Name <email>", an email or a login`)
	}
	sig := Signature{Name: who, Email: strings.ReplaceAll(who, " ", ".") + "@karma.invalid"}
	if a, err := mail.ParseAddress(who); err == nil {
		sig = Signature{Name: a.Name, Email: a.Address}
		if sig.Name == "" {
			sig.Name = a.Address
		}
	}
	// The parsed fields too: an RFC 2047 encoded word (=?utf-8?q?...=0A...?=) decodes to a newline.
	for _, s := range []string{who, sig.Name, sig.Email} {
		if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
			return Signature{}, fmt.Errorf("%q holds a control character at byte %d of %q: give one line, \"Name <email>\", an email or a login", who, i, s)
		}
	}
	if strings.ContainsAny(sig.Name+sig.Email, "<>") || strings.TrimSpace(sig.Name) == "" {
		return Signature{}, fmt.Errorf("%q is not \"Name <email>\", an email or a login: angle brackets go around one address only", who)
	}
	return sig, nil
}

// ErrBranchMoved is returned by Push when the branch no longer points at the commit's parent
// (someone pushed in between): the caller builds its commit again on the new head.
var ErrBranchMoved = errors.New("gitrepo: the branch moved")

// ErrDirty refuses to commit over a file with changes that are not committed.
var ErrDirty = errors.New("gitrepo: uncommitted changes")

// CommitFiles writes a commit whose parent is parent and whose tree is the parent's with files
// (paths relative to the config repository's folder) replaced or added. It writes objects only:
// no branch, index or working tree changes. It returns the new commit's sha.
func (r *Repo) CommitFiles(ctx context.Context, parent string, files map[string][]byte, author, committer Signature, message string, when time.Time) (string, error) {
	pc, err := r.commit(ctx, parent)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	root, err := pc.Tree()
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	treeHash := root.Hash
	for _, p := range names {
		full := p
		if r.sub != "" {
			full = r.sub + "/" + p
		}
		if !validRepoPath(full) {
			return "", fmt.Errorf("repository %s: %q is not a path inside the repository", r.label, p)
		}
		blob, err := r.writeObject(plumbing.BlobObject, files[p])
		if err != nil {
			return "", err
		}
		if treeHash, err = r.replace(treeHash, strings.Split(full, "/"), blob); err != nil {
			return "", fmt.Errorf("repository %s: %s: %w", r.label, p, err)
		}
	}
	c := &object.Commit{
		Author:       object.Signature{Name: author.Name, Email: author.Email, When: when},
		Committer:    object.Signature{Name: committer.Name, Email: committer.Email, When: when},
		Message:      message,
		TreeHash:     treeHash,
		ParentHashes: []plumbing.Hash{pc.Hash},
	}
	obj := r.git.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return "", err
	}
	h, err := r.git.Storer.SetEncodedObject(obj)
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

func validRepoPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "." || part == ".git" {
			return false
		}
	}
	return true
}

// writeObject stores a blob or other object. Called with r.mu held.
func (r *Repo) writeObject(t plumbing.ObjectType, data []byte) (plumbing.Hash, error) {
	obj := r.git.Storer.NewEncodedObject()
	obj.SetType(t)
	obj.SetSize(int64(len(data)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		w.Close()
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return r.git.Storer.SetEncodedObject(obj)
}

// replace returns the hash of tree with the file at parts set to blob (folders are created as
// needed). Called with r.mu held.
func (r *Repo) replace(tree plumbing.Hash, parts []string, blob plumbing.Hash) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if !tree.IsZero() {
		t, err := object.GetTree(r.git.Storer, tree)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries = append(entries, t.Entries...)
	}
	name := parts[0]
	idx := -1
	for i, e := range entries {
		if e.Name == name {
			idx = i
		}
	}
	var next object.TreeEntry
	if len(parts) == 1 {
		if idx >= 0 && entries[idx].Mode != filemode.Regular && entries[idx].Mode != filemode.Executable {
			return plumbing.ZeroHash, fmt.Errorf("%s is not a regular file in the parent commit", name)
		}
		next = object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: blob}
	} else {
		sub := plumbing.ZeroHash
		if idx >= 0 {
			if entries[idx].Mode != filemode.Dir {
				return plumbing.ZeroHash, fmt.Errorf("%s is not a folder in the parent commit", name)
			}
			sub = entries[idx].Hash
		}
		h, err := r.replace(sub, parts[1:], blob)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		next = object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
	}
	if idx >= 0 {
		entries[idx] = next
	} else {
		entries = append(entries, next)
	}
	sort.Slice(entries, func(i, j int) bool { return gitName(entries[i]) < gitName(entries[j]) })
	t := &object.Tree{Entries: entries}
	obj := r.git.Storer.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return r.git.Storer.SetEncodedObject(obj)
}

// gitName is the name git sorts a tree entry by: folders as if they ended in '/'.
func gitName(e object.TreeEntry) string {
	if e.Mode == filemode.Dir {
		return e.Name + "/"
	}
	return e.Name
}

// Push pushes commit sha to branch of the remote, only as a fast-forward: when the branch moved
// it returns ErrBranchMoved (nothing is forced, so nobody's commit is ever lost).
func (r *Repo) Push(ctx context.Context, sha, branch string) error {
	if r.remote == nil {
		return fmt.Errorf("repository %s: a local clone is committed to, not pushed", r.label)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	local := plumbing.ReferenceName("refs/karma/push/" + sha)
	if err := r.git.Storer.SetReference(plumbing.NewHashReference(local, plumbing.NewHash(sha))); err != nil {
		return err
	}
	defer r.git.Storer.RemoveReference(local)
	auth, err := r.remote.auth()
	if err != nil {
		return err
	}
	spec := config.RefSpec(string(local) + ":refs/heads/" + branch)
	err = r.git.PushContext(ctx, &git.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Auth: auth})
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
	case r.moved(ctx, auth, sha, branch):
		return fmt.Errorf("repository %s: branch %s: %w", r.label, branch, ErrBranchMoved)
	default:
		return &PushError{Repo: r.label, Branch: branch, Err: err}
	}
	// What was pushed is now the remote branch's head, as a fetch would record it.
	return r.git.Storer.SetReference(plumbing.NewHashReference(plumbing.NewRemoteReferenceName("origin", branch), plumbing.NewHash(sha)))
}

// moved reports, after a refused push, whether the remote branch now points at a commit that
// sha does not descend from (go-git reports a non-fast-forward only as text). Called with r.mu
// held.
func (r *Repo) moved(ctx context.Context, auth transport.AuthMethod, sha, branch string) bool {
	rm, err := r.git.Remote("origin")
	if err != nil {
		return false
	}
	refs, err := rm.ListContext(ctx, &git.ListOptions{Auth: auth})
	if err != nil {
		return false
	}
	for _, ref := range refs {
		if ref.Name() != plumbing.NewBranchReferenceName(branch) {
			continue
		}
		head, err := r.git.CommitObject(ref.Hash())
		if err != nil {
			return true // a commit this cache has never seen
		}
		ours, err := r.git.CommitObject(plumbing.NewHash(sha))
		if err != nil {
			return false
		}
		ok, err := head.IsAncestor(ours)
		return err == nil && !ok
	}
	return false
}

// PushError is a push the remote refused or could not take (no write access, unreachable).
type PushError struct {
	Repo, Branch string
	Err          error
}

func (e *PushError) Error() string {
	return fmt.Sprintf("pushing to branch %s of repository %s: %v%s", e.Branch, e.Repo, e.Err, hint(e.Err))
}
func (e *PushError) Unwrap() error { return e.Err }

// CommitCheckout commits files (paths relative to the config repository's folder) on top of the
// checked-out branch of a local clone, and updates the working tree and index for exactly those
// files. It refuses when HEAD is detached or when one of the files has changes that are not
// committed (they would be lost); other staged or unstaged changes are left as they are.
func (r *Repo) CommitCheckout(ctx context.Context, files map[string][]byte, author, committer Signature, message string, when time.Time) (string, error) {
	if r.remote != nil {
		return "", fmt.Errorf("repository %s: a cache clone has no checkout", r.label)
	}
	r.mu.Lock()
	head, err := r.git.Head()
	r.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("repository %s: HEAD: %w", r.label, err)
	}
	if !head.Name().IsBranch() {
		return "", fmt.Errorf("repository %s: HEAD is detached at %s: check out the branch to commit to", r.label, short(head.Hash().String()))
	}
	for p := range files {
		if err := r.unchanged(head.Hash(), p); err != nil {
			return "", err
		}
	}
	sha, err := r.CommitFiles(ctx, head.Hash().String(), files, author, committer, message, when)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := plumbing.NewHashReference(head.Name(), plumbing.NewHash(sha))
	if err := r.git.Storer.CheckAndSetReference(next, head); err != nil {
		return "", fmt.Errorf("repository %s: branch %s moved while committing: %w", r.label, head.Name().Short(), err)
	}
	wt, err := r.git.Worktree()
	if err != nil {
		return "", err
	}
	for p, data := range files {
		full := r.full(p)
		if err := writeFileAtomic(filepath.Join(r.dir, filepath.FromSlash(full)), data); err != nil {
			return sha, fmt.Errorf("repository %s: committed %s but could not update %s in the working tree: %w", r.label, short(sha), full, err)
		}
		if _, err := wt.Add(full); err != nil {
			return sha, fmt.Errorf("repository %s: committed %s but could not update the index for %s: %w", r.label, short(sha), full, err)
		}
	}
	return sha, nil
}

func (r *Repo) full(p string) string {
	if r.sub == "" {
		return p
	}
	return r.sub + "/" + p
}

// unchanged refuses a file whose working-tree content differs from the commit's.
func (r *Repo) unchanged(commit plumbing.Hash, p string) error {
	full := r.full(p)
	disk, derr := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(full)))
	r.mu.Lock()
	committed, cerr := r.blobAt(commit, full)
	r.mu.Unlock()
	switch {
	case errors.Is(cerr, object.ErrFileNotFound) && os.IsNotExist(derr):
		return nil
	case cerr != nil && !errors.Is(cerr, object.ErrFileNotFound):
		return cerr
	case derr != nil && !os.IsNotExist(derr):
		return derr
	case cerr == nil && derr == nil && bytes.Equal(disk, committed):
		return nil
	}
	return fmt.Errorf("repository %s: %s: %w: commit or stash them first", r.label, full, ErrDirty)
}

// blobAt reads a file of a commit. Called with r.mu held.
func (r *Repo) blobAt(commit plumbing.Hash, p string) ([]byte, error) {
	c, err := r.git.CommitObject(commit)
	if err != nil {
		return nil, err
	}
	f, err := c.File(p)
	if err != nil {
		return nil, err
	}
	rd, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

// ReadFileAt reads one file of a commit (path relative to the config repository's folder).
func (r *Repo) ReadFileAt(ctx context.Context, sha, p string) ([]byte, error) {
	if _, err := r.commit(ctx, sha); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobAt(plumbing.NewHash(sha), r.full(p))
}

// LookupFileAt is ReadFileAt that tells a file the commit does not have (found false) from a
// failure to read it.
func (r *Repo) LookupFileAt(ctx context.Context, sha, p string) (data []byte, found bool, err error) {
	if _, err := r.commit(ctx, sha); err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	data, err = r.blobAt(plumbing.NewHash(sha), r.full(p))
	if errors.Is(err, object.ErrFileNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("repository %s: %s at commit %s: %w", r, p, short(sha), err)
	}
	return data, true, nil
}

// ReadFileBefore reads one file (path relative to the config repository's folder) as the first
// parent of commit sha has it: found is false when the parent has no such file, or sha has no
// parent (the file was added by sha, or the history starts there).
func (r *Repo) ReadFileBefore(ctx context.Context, sha, p string) (data []byte, found bool, err error) {
	c, err := r.commit(ctx, sha)
	if err != nil {
		return nil, false, err
	}
	if len(c.ParentHashes) == 0 {
		return nil, false, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	data, err = r.blobAt(c.ParentHashes[0], r.full(p))
	if errors.Is(err, object.ErrFileNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("repository %s: %s before commit %s: %w", r, p, short(sha), err)
	}
	return data, true, nil
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
