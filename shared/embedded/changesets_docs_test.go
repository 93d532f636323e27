package embedded

import (
	"strings"
	"testing"
)

func TestRecentDocsKeepsTheBudgetLeastRecentlyUsedFirstOut(t *testing.T) {
	r := newRecentDocs(10)
	r.put("a", "aaaa")
	r.put("b", "bbbb")
	if _, ok := r.get("a"); !ok { // a is now the most recently used
		t.Fatal("a forgotten within the budget")
	}
	r.put("c", "cccc") // 12 bytes: b, the least recently used, goes
	if _, ok := r.get("b"); ok {
		t.Error("b kept beyond the budget")
	}
	for _, id := range []string{"a", "c"} {
		if doc, ok := r.get(id); !ok || doc != strings.Repeat(id, 4) {
			t.Errorf("get(%s) = %q, %v", id, doc, ok)
		}
	}
	r.put("a", "aa") // replaced, not added
	if doc, _ := r.get("a"); doc != "aa" || r.size != 6 || len(r.byID) != 2 || r.order.Len() != 2 {
		t.Errorf("after replacing a: %q, size %d, %d ids, %d in order", doc, r.size, len(r.byID), r.order.Len())
	}
	r.put("c", strings.Repeat("c", 11)) // larger than the budget: not kept, and the old one forgotten
	if _, ok := r.get("c"); ok || r.size != 2 {
		t.Errorf("a document over the budget: kept %v, size %d", ok, r.size)
	}
}
