package embedded

// The documents a ChangeSets last read or wrote, by change set id: Update starts from one
// instead of reading it again (changesets.go). A remembered document may be stale — another
// process, or another store on the same file, may have written since — which is harmless:
// Update writes only on condition that the stored document is still the one it started from,
// and decides on the stored document whenever fn refuses or changes nothing. Bounded in bytes,
// least recently used first out.

import (
	"container/list"
	"sync"
)

// docsBudget is how many bytes of documents a store remembers. A change set of one component
// is 1–3 KB; one of 20,000 is megabytes, which is not kept.
const docsBudget = 8 << 20

type recentDocs struct {
	mu    sync.Mutex
	max   int
	size  int
	order *list.List               // of *recentDoc, most recently used first
	byID  map[string]*list.Element // of order
}

type recentDoc struct{ id, doc string }

func newRecentDocs(max int) *recentDocs {
	return &recentDocs{max: max, order: list.New(), byID: map[string]*list.Element{}}
}

// get returns the document last remembered for id.
func (r *recentDocs) get(id string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byID[id]
	if !ok {
		return "", false
	}
	r.order.MoveToFront(e)
	return e.Value.(*recentDoc).doc, true
}

// put remembers doc as id's document, forgetting the least recently used beyond the budget (a
// document larger than the whole budget is not kept, and forgets what was kept for id).
func (r *recentDocs) put(id, doc string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.byID[id]; ok {
		r.remove(e)
	}
	if len(doc) > r.max {
		return
	}
	r.byID[id] = r.order.PushFront(&recentDoc{id: id, doc: doc})
	r.size += len(doc)
	for r.size > r.max {
		r.remove(r.order.Back())
	}
}

func (r *recentDocs) remove(e *list.Element) {
	d := r.order.Remove(e).(*recentDoc)
	delete(r.byID, d.id)
	r.size -= len(d.doc)
}
