package gitrepo

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// DirTreeID returns the object id git gives a tree holding exactly the folder dir as it is on
// disk: every regular file a blob (mode 100755 when its owner may execute it, else 100644),
// every folder a tree (an empty one too), in git's order. Top-level entries named in skip are
// left out. A symbolic link or any other special file is an error naming it. The id is SHA-1
// (40 hex digits), or SHA-256 (64) when like is that long: the length of the id it is to be
// compared with.
//
// A folder written from a tree by writing each blob with its mode (configrepo's modules folder)
// has the tree's id; one whose files were changed, added or removed on disk since has another.
// It reads each file, unless the file is unchanged since an earlier call read it
// (dirhash_cache.go: its inode, size, mode and modification and change times the same).
func DirTreeID(dir, like string, skip ...string) (string, error) {
	newHash := sha1.New
	if len(like) == 2*sha256.Size {
		newHash = sha256.New
	}
	sum, err := dirTree(dir, newHash, skip)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sum), nil
}

type treeItem struct {
	name, mode string
	sum        []byte
	dir        bool
}

func dirTree(dir string, newHash func() hash.Hash, skip []string) ([]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	items := make([]treeItem, 0, len(entries))
next:
	for _, e := range entries {
		for _, s := range skip {
			if e.Name() == s {
				continue next
			}
		}
		p := filepath.Join(dir, e.Name())
		switch t := e.Type(); {
		case t.IsDir():
			sum, err := dirTree(p, newHash, nil)
			if err != nil {
				return nil, err
			}
			items = append(items, treeItem{name: e.Name(), mode: "40000", sum: sum, dir: true})
		case t.IsRegular():
			sum, exec, err := blobID(p, newHash)
			if err != nil {
				return nil, err
			}
			mode := "100644"
			if exec {
				mode = "100755"
			}
			items = append(items, treeItem{name: e.Name(), mode: mode, sum: sum})
		default:
			return nil, fmt.Errorf("%s: not a regular file or folder (%s)", p, t)
		}
	}
	// Git orders a tree's entries by name, a folder's name compared as if it ended in "/".
	key := func(it treeItem) string {
		if it.dir {
			return it.name + "/"
		}
		return it.name
	}
	sort.Slice(items, func(i, j int) bool { return key(items[i]) < key(items[j]) })
	var body []byte
	for _, it := range items {
		body = append(body, it.mode...)
		body = append(body, ' ')
		body = append(body, it.name...)
		body = append(body, 0)
		body = append(body, it.sum...)
	}
	h := newHash()
	fmt.Fprintf(h, "tree %d\x00", len(body))
	h.Write(body)
	return h.Sum(nil), nil
}

// blobID is the git blob id of the file at p and whether its owner may execute it: remembered
// from an earlier call when the file is unchanged since (dirhash_cache.go), else read.
func blobID(p string, newHash func() hash.Hash) ([]byte, bool, error) {
	sha256 := newHash().Size() == 32
	before, err := os.Lstat(p)
	if err != nil {
		return nil, false, err
	}
	id, known := fileStat(before, sha256)
	if known && before.Mode().IsRegular() {
		if e, ok := cachedBlob(p, id); ok {
			return e.sum, e.exec, nil
		}
	}
	hashedAt := time.Now()
	sum, exec, err := readBlob(p, newHash)
	if err != nil || !known {
		return sum, exec, err
	}
	// Remembered only when the file is still the one stat described before it was read.
	if after, err := os.Lstat(p); err == nil {
		if again, ok := fileStat(after, sha256); ok && again == id {
			rememberBlob(p, id, hashedAt, blobEntry{sum: sum, exec: exec})
		}
	}
	return sum, exec, nil
}

// readBlob reads the file at p and returns its git blob id and whether its owner may execute it.
func readBlob(p string, newHash func() hash.Hash) ([]byte, bool, error) {
	blobReads.Add(1)
	f, err := os.Open(p)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("%s: not a regular file", p)
	}
	h := newHash()
	io.WriteString(h, "blob "+strconv.FormatInt(fi.Size(), 10)+"\x00")
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, false, err
	}
	if n != fi.Size() {
		return nil, false, fmt.Errorf("%s: changed while it was read", p)
	}
	return h.Sum(nil), fi.Mode()&0o100 != 0, nil
}
