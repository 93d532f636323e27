package queuetest

// Subtests of FIFO queues: group order and blocking, dedup.

import (
	"slices"
	"testing"
	"time"
)

func testFIFOGroups(t *testing.T, e env) {
	ctx, name := t.Context(), e.fifo("")
	send(t, e.q, name, grouped(e, "a1", "a"), grouped(e, "a2", "a"))
	ds := recvSome(t, e.q, name, 1, Long)
	if len(ds) != 1 || string(ds[0].Body) != "a1" {
		t.Fatalf("first Receive = %v, want [a1]", bodies(ds))
	}
	a1 := ds[0]
	// a1 in flight: a2 waits, group b is served.
	send(t, e.q, name, grouped(e, "b1", "b"))
	b1 := recvOne(t, e.q, name, "b1", Long)
	recvNone(t, e.q, name, 200*time.Millisecond)
	// a1 released: it comes before a2 again.
	if err := e.q.ChangeVisibility(ctx, name, a1.ReceiptHandle, 0); err != nil {
		t.Fatalf("ChangeVisibility(a1, 0): %v", err)
	}
	ds = recvSome(t, e.q, name, 10, Long)
	if got := bodies(ds); !slices.Equal(got, []string{"a1"}) && !slices.Equal(got, []string{"a1", "a2"}) {
		t.Fatalf("after releasing a1 Receive = %v, want [a1] or [a1 a2]", got)
	}
	if ds[0].MessageID != a1.MessageID || ds[0].ReceiveCount != 2 {
		t.Errorf("a1 again: id %s count %d, want id %s count 2", ds[0].MessageID, ds[0].ReceiveCount, a1.MessageID)
	}
	del(t, e.q, name, ds...)
	if len(ds) == 1 {
		del(t, e.q, name, recvOne(t, e.q, name, "a2", Long))
	}
	del(t, e.q, name, b1)
	recvNone(t, e.q, name, 100*time.Millisecond)
}

func testFIFODedup(t *testing.T, e env) {
	name := e.fifo("")
	m := grouped(e, "once", "g")
	send(t, e.q, name, m)
	m.Body = []byte("again") // same DedupID: accepted, dropped
	send(t, e.q, name, m)
	del(t, e.q, name, recvOne(t, e.q, name, "once", Long))
	recvNone(t, e.q, name, 200*time.Millisecond)
}
