package gitrepo

import (
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Blob ids remembered by what the file system says of the file, as git's index does: DirTreeID
// is asked of the same modules folders at every plan and apply (configrepo checks its shared
// folder, shared/terraform each workspace's copy), and reading and hashing every file each time
// was a fifth of the embedded pipeline's CPU. A file's id is taken from here only when its
// identity is unchanged since it was hashed — device, inode, size, mode, modification time and
// change time (ctime, which every write, chmod or rename updates and no user can set back) — and
// it had not changed for stableFor before it was hashed: a file written in the same clock tick
// as the hashing could be changed again within that tick without its times moving (git's
// "racily clean" entries), so such a file is hashed again each time until it is older.

// stableFor is how long a file must have been unchanged, when it is hashed, for its id to be
// remembered (a variable for the tests).
var stableFor = 2 * time.Second

// blobReads counts the files read and hashed (for the tests).
var blobReads atomic.Int64

// maxBlobCache bounds the entries kept; when full the cache starts again empty.
const maxBlobCache = 1 << 16

// fileIdentity is what a file's id is remembered by (fileStat gives it; ok false where the
// platform does not give a change time: nothing is remembered there).
type fileIdentity struct {
	dev, ino       uint64
	size           int64
	mode           os.FileMode
	mtime, ctimeNs int64
	sha256         bool // which id is remembered: SHA-1 or SHA-256
}

type blobEntry struct {
	sum  []byte
	exec bool
}

var blobCache = struct {
	sync.Mutex
	m map[string]map[fileIdentity]blobEntry // by path
	n int
}{m: map[string]map[fileIdentity]blobEntry{}}

// cachedBlob returns the id remembered for the file at p with identity id.
func cachedBlob(p string, id fileIdentity) (blobEntry, bool) {
	blobCache.Lock()
	defer blobCache.Unlock()
	e, ok := blobCache.m[p][id]
	return e, ok
}

// rememberBlob keeps the id of the file at p, hashed at hashedAt with identity id, if the file
// had been unchanged for stableFor then.
func rememberBlob(p string, id fileIdentity, hashedAt time.Time, e blobEntry) {
	if hashedAt.UnixNano()-max(id.mtime, id.ctimeNs) < int64(stableFor) {
		return
	}
	blobCache.Lock()
	defer blobCache.Unlock()
	if blobCache.n >= maxBlobCache {
		blobCache.m, blobCache.n = map[string]map[fileIdentity]blobEntry{}, 0
	}
	byID := blobCache.m[p]
	if byID == nil {
		byID = map[fileIdentity]blobEntry{}
		blobCache.m[p] = byID
	}
	for old := range byID { // one identity a path: the file as it is now
		delete(byID, old)
		blobCache.n--
	}
	byID[id] = e
	blobCache.n++
}
