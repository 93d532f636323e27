package queuetest

// Subtests of delivery: send, receive, delete, visibility, stale receipts, batches, waits and
// isolation between queue names.

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

func testSendReceiveDelete(t *testing.T, e env) {
	name := e.name("")
	send(t, e.q, name, body("hello"))
	d := recvOne(t, e.q, name, "hello", 200*time.Millisecond)
	if d.ReceiveCount != 1 {
		t.Errorf("ReceiveCount = %d, want 1", d.ReceiveCount)
	}
	if !near(d.SentAt) {
		t.Errorf("SentAt = %v, want about now", d.SentAt)
	}
	del(t, e.q, name, d)
	time.Sleep(300 * time.Millisecond) // past the visibility: a deleted message stays gone
	recvNone(t, e.q, name, 200*time.Millisecond)
}

func testVisibilityTimeout(t *testing.T, e env) {
	name := e.name("")
	const vis = 300 * time.Millisecond
	send(t, e.q, name, body("v"))
	start := time.Now()
	d1 := recvOne(t, e.q, name, "v", vis)
	recvNone(t, e.q, name, 0)
	d2 := recvOne(t, e.q, name, "v", Long)
	if elapsed := time.Since(start); elapsed < vis {
		t.Errorf("message came back after %v, before its visibility timeout %v", elapsed, vis)
	}
	if d2.MessageID != d1.MessageID || d2.ReceiveCount != 2 {
		t.Errorf("second delivery = id %s count %d, want id %s count 2", d2.MessageID, d2.ReceiveCount, d1.MessageID)
	}
	if d2.ReceiptHandle == d1.ReceiptHandle {
		t.Errorf("second delivery reuses the receipt handle %q", d1.ReceiptHandle)
	}
	del(t, e.q, name, d2)
}

func testChangeVisibility(t *testing.T, e env) {
	ctx, name := t.Context(), e.name("")
	send(t, e.q, name, body("c"))
	d1 := recvOne(t, e.q, name, "c", Long)
	recvNone(t, e.q, name, 0)
	if err := e.q.ChangeVisibility(ctx, name, d1.ReceiptHandle, 0); err != nil {
		t.Fatalf("ChangeVisibility(0): %v", err)
	}
	d2 := recvOne(t, e.q, name, "c", 200*time.Millisecond)
	if d2.MessageID != d1.MessageID || d2.ReceiveCount != 2 {
		t.Errorf("after release: id %s count %d, want id %s count 2", d2.MessageID, d2.ReceiveCount, d1.MessageID)
	}
	// Extending hides it past its original timeout.
	if err := e.q.ChangeVisibility(ctx, name, d2.ReceiptHandle, Long); err != nil {
		t.Fatalf("ChangeVisibility(extend): %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	recvNone(t, e.q, name, 0)
	del(t, e.q, name, d2)
}

func testStaleReceipt(t *testing.T, e env) {
	ctx, name := t.Context(), e.name("")
	send(t, e.q, name, body("s"))
	d1 := recvOne(t, e.q, name, "s", Long)
	if err := e.q.ChangeVisibility(ctx, name, d1.ReceiptHandle, 0); err != nil {
		t.Fatalf("ChangeVisibility(0): %v", err)
	}
	d2 := recvOne(t, e.q, name, "s", Long) // d1's receipt is stale from here on
	for op, err := range map[string]error{
		"Delete":           e.q.Delete(ctx, name, d1.ReceiptHandle),
		"ChangeVisibility": e.q.ChangeVisibility(ctx, name, d1.ReceiptHandle, 0),
		"Kill":             e.q.Kill(ctx, name, d1.ReceiptHandle, "stale"),
	} {
		if !errors.Is(err, queue.ErrStaleReceipt) {
			t.Errorf("%s with a stale receipt: %v, want an error matching queue.ErrStaleReceipt", op, err)
		}
	}
	// None of them touched the message: it is still in flight under d2.
	recvNone(t, e.q, name, 0)
	if dead := listDead(t, e.dl, name); len(dead) != 0 {
		t.Errorf("stale Kill dead-lettered %d messages", len(dead))
	}
	del(t, e.q, name, d2)
}

func testBatch(t *testing.T, e env) {
	name := e.name("")
	var msgs []queue.Message
	var want []string
	for i := range 25 {
		b := fmt.Sprintf("m%02d", i)
		msgs = append(msgs, body(b))
		want = append(want, b)
	}
	send(t, e.q, name, msgs...)
	seen := map[string]bool{}
	var got []string
	for len(got) < 25 {
		for _, d := range recvSome(t, e.q, name, 10, Long) {
			if seen[d.MessageID] {
				t.Fatalf("message %s (%q) delivered twice", d.MessageID, d.Body)
			}
			seen[d.MessageID] = true
			got = append(got, string(d.Body))
			del(t, e.q, name, d)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
	recvNone(t, e.q, name, 100*time.Millisecond)
}

func testReceiveWait(t *testing.T, e env) {
	name := e.name("")
	// Empty queue: waits, then returns nothing and no error.
	start := time.Now()
	recvNone(t, e.q, name, 200*time.Millisecond)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("empty Receive with wait 200ms took %v", elapsed)
	}
	// A message sent while Receive waits ends the wait at once.
	const wait, delay = 8 * time.Second, 150 * time.Millisecond
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		time.Sleep(delay)
		if err := e.q.Send(t.Context(), name, body("late")); err != nil {
			t.Errorf("Send: %v", err)
		}
	}()
	start = time.Now()
	ds, err := e.q.Receive(t.Context(), name, 10, Long, wait)
	elapsed := time.Since(start)
	<-sent
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(ds) != 1 || string(ds[0].Body) != "late" {
		t.Fatalf("Receive = %v, want [late]", bodies(ds))
	}
	if elapsed >= wait/2 {
		t.Errorf("Receive returned after %v: it should end as soon as the message arrives (after %v)", elapsed, delay)
	}
	del(t, e.q, name, ds...)
}

func testIsolation(t *testing.T, e env) {
	ctx, a, b := t.Context(), e.name("a"), e.name("b")
	send(t, e.q, a, body("for-a"))
	recvNone(t, e.q, b, 100*time.Millisecond)
	d := recvOne(t, e.q, a, "for-a", Long)
	// A receipt of queue a means nothing to queue b.
	if err := e.q.Delete(ctx, b, d.ReceiptHandle); err == nil {
		t.Errorf("Delete on queue %s with a receipt of queue %s succeeded", b, a)
	}
	if err := e.q.Kill(ctx, a, d.ReceiptHandle, "isolated"); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	waitDead(t, e.dl, a, 1)
	if dead := listDead(t, e.dl, b); len(dead) != 0 {
		t.Errorf("ListDead(%s) = %d letters, want 0", b, len(dead))
	}
	if n, err := e.dl.Redrive(ctx, b); err != nil || n != 0 {
		t.Errorf("Redrive(%s) = %d, %v; want 0", b, n, err)
	}
	if dead := listDead(t, e.dl, a); len(dead) != 1 {
		t.Errorf("ListDead(%s) after Redrive(%s) = %d letters, want 1", a, b, len(dead))
	}
}
