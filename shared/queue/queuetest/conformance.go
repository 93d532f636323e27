// Package queuetest is the conformance suite every queue.Queue (with its queue.DeadLetters)
// passes: the embedded SQLite queue, and the SQS queue against moto or a real account.
//
// Contract of Run:
//   - newQueue is called once per subtest (the subtests run in parallel) and returns the queue,
//     its dead-letter side and the receive count after which it dead-letters messages. It may
//     return the same backend every time: every subtest uses its own queue names
//     "kq-<random>-<subtest>[-<suffix>]", so reruns against a long-lived server never collide.
//     Queues the FIFO subtests use end in ".fifo" and all their messages carry a GroupID and a
//     DedupID; the other subtests use neither, so an SQS backend can map names to standard and
//     FIFO queues (created on demand or beforehand). Nothing is cleaned up.
//   - Only the interfaces are relied on. Timeouts are short (100-300 ms); a backend with a
//     coarser clock (SQS counts whole seconds) must round visibility timeouts up, and may round
//     waits either way. A Receive that comes back empty is retried until a deadline, as SQS
//     short polls may miss messages; "nothing is delivered" checks use short waits.
//   - What is checked: send/receive/delete; visibility timeout (hidden, back with ReceiveCount
//     2); ChangeVisibility (release with 0, extend); stale receipts (Delete, ChangeVisibility
//     and Kill fail matching queue.ErrStaleReceipt); dead-lettering after maxReceives receives
//     with a non-empty reason; Kill with its exact reason; ListDead oldest first; Redrive;
//     batch send of 25; Receive's wait ending as soon as a message arrives; FIFO group order
//     and blocking; FIFO dedup; isolation between queue names.
package queuetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

// Long is the visibility used where a message must stay hidden for the whole subtest.
const Long = 30 * time.Second

// patience bounds every wait for something that must happen (a message coming back, a dead
// letter showing up). Generous: SQS rounds to seconds.
const patience = 10 * time.Second

// env is what a subtest works with.
type env struct {
	q           queue.Queue
	dl          queue.DeadLetters
	maxReceives int
	prefix      string // "kq-<random>-<subtest>"
}

// name is the subtest's queue name for suffix ("" for the main one).
func (e env) name(suffix string) string {
	if suffix == "" {
		return e.prefix
	}
	return e.prefix + "-" + suffix
}

// fifo is a FIFO queue name (SQS requires the ".fifo" suffix).
func (e env) fifo(suffix string) string { return e.name(suffix) + ".fifo" }

// Run runs the suite as parallel subtests of t.
func Run(t *testing.T, newQueue func(t *testing.T) (queue.Queue, queue.DeadLetters, int)) {
	t.Helper()
	root := fmt.Sprintf("kq-%08x", rand.Uint32())
	tests := []struct {
		name string
		run  func(t *testing.T, e env)
	}{
		{"SendReceiveDelete", testSendReceiveDelete},
		{"VisibilityTimeout", testVisibilityTimeout},
		{"ChangeVisibility", testChangeVisibility},
		{"StaleReceipt", testStaleReceipt},
		{"DeadLetterAfterMaxReceives", testMaxReceives},
		{"Kill", testKill},
		{"Redrive", testRedrive},
		{"BatchSend25", testBatch},
		{"ReceiveWait", testReceiveWait},
		{"FIFOGroups", testFIFOGroups},
		{"FIFODedup", testFIFODedup},
		{"Isolation", testIsolation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, dl, maxReceives := newQueue(t)
			if maxReceives < 1 {
				t.Fatalf("newQueue returned maxReceives %d, want >= 1", maxReceives)
			}
			tc.run(t, env{q: q, dl: dl, maxReceives: maxReceives, prefix: root + "-" + strings.ToLower(tc.name)})
		})
	}
}

// --- helpers ---

func send(t *testing.T, q queue.Queue, name string, msgs ...queue.Message) {
	t.Helper()
	if err := q.Send(t.Context(), name, msgs...); err != nil {
		t.Fatalf("Send(%s, %d messages): %v", name, len(msgs), err)
	}
}

func body(s string) queue.Message { return queue.Message{Body: []byte(s)} }

// grouped is a FIFO message with a DedupID unique to this run.
func grouped(e env, s, group string) queue.Message {
	return queue.Message{Body: []byte(s), GroupID: group, DedupID: e.prefix + "-" + s}
}

// recvSome receives until at least one message arrives (fatal after patience).
func recvSome(t *testing.T, q queue.Queue, name string, max int, visibility time.Duration) []queue.Delivery {
	t.Helper()
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		ds, err := q.Receive(t.Context(), name, max, visibility, 200*time.Millisecond)
		if err != nil {
			t.Fatalf("Receive(%s): %v", name, err)
		}
		if len(ds) > max {
			t.Fatalf("Receive(%s, max %d) returned %d messages", name, max, len(ds))
		}
		if len(ds) > 0 {
			for _, d := range ds {
				if d.MessageID == "" || d.ReceiptHandle == "" || d.ReceiveCount < 1 {
					t.Fatalf("Receive(%s): incomplete delivery %+v", name, d)
				}
			}
			return ds
		}
	}
	t.Fatalf("Receive(%s): nothing within %v", name, patience)
	return nil
}

// recvOne receives exactly one message with body want.
func recvOne(t *testing.T, q queue.Queue, name, want string, visibility time.Duration) queue.Delivery {
	t.Helper()
	ds := recvSome(t, q, name, 10, visibility)
	if len(ds) != 1 || string(ds[0].Body) != want {
		t.Fatalf("Receive(%s) = %v, want exactly %q", name, bodies(ds), want)
	}
	return ds[0]
}

// recvNone checks that nothing is delivered within wait.
func recvNone(t *testing.T, q queue.Queue, name string, wait time.Duration) {
	t.Helper()
	ds, err := q.Receive(t.Context(), name, 10, Long, wait)
	if err != nil {
		t.Fatalf("Receive(%s): %v", name, err)
	}
	if len(ds) > 0 {
		t.Fatalf("Receive(%s) = %v, want nothing", name, bodies(ds))
	}
}

func del(t *testing.T, q queue.Queue, name string, ds ...queue.Delivery) {
	t.Helper()
	for _, d := range ds {
		if err := q.Delete(t.Context(), name, d.ReceiptHandle); err != nil {
			t.Fatalf("Delete(%s, %q): %v", name, d.Body, err)
		}
	}
}

func bodies(ds []queue.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Body)
	}
	return out
}

func listDead(t *testing.T, dl queue.DeadLetters, name string) []queue.DeadLetter {
	t.Helper()
	out, err := dl.ListDead(t.Context(), name)
	if err != nil {
		t.Fatalf("ListDead(%s): %v", name, err)
	}
	return out
}

// waitDead polls ListDead until it holds n letters (fatal after patience).
func waitDead(t *testing.T, dl queue.DeadLetters, name string, n int) []queue.DeadLetter {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		out := listDead(t, dl, name)
		if len(out) == n {
			return out
		}
		if len(out) > n || time.Now().After(deadline) {
			t.Fatalf("ListDead(%s) has %d letters, want %d", name, len(out), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func near(at time.Time) bool {
	return !at.IsZero() && time.Since(at).Abs() < time.Minute
}

// --- subtests ---

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

func testMaxReceives(t *testing.T, e env) {
	ctx, name := t.Context(), e.name("")
	send(t, e.q, name, body("poison"))
	var last queue.Delivery
	for i := 1; i <= e.maxReceives; i++ {
		last = recvOne(t, e.q, name, "poison", Long)
		if last.ReceiveCount != i {
			t.Fatalf("receive %d: ReceiveCount = %d", i, last.ReceiveCount)
		}
		if err := e.q.ChangeVisibility(ctx, name, last.ReceiptHandle, 0); err != nil {
			t.Fatalf("ChangeVisibility(0): %v", err)
		}
	}
	// The next receive moves it to the dead letters instead of delivering it.
	deadline := time.Now().Add(patience)
	for {
		recvNone(t, e.q, name, 100*time.Millisecond)
		if dead := listDead(t, e.dl, name); len(dead) == 1 {
			d := dead[0]
			if d.MessageID != last.MessageID || string(d.Body) != "poison" || d.Queue != name {
				t.Errorf("dead letter = %+v, want message %s of queue %s", d, last.MessageID, name)
			}
			if d.Reason == "" || d.ReceiveCount < e.maxReceives || !near(d.DeadAt) {
				t.Errorf("dead letter: reason %q, receive count %d, dead at %v; want a reason, >= %d, about now",
					d.Reason, d.ReceiveCount, d.DeadAt, e.maxReceives)
			}
			return
		} else if len(dead) > 1 || time.Now().After(deadline) {
			t.Fatalf("ListDead = %d letters, want 1", len(dead))
		}
	}
}

func testKill(t *testing.T, e env) {
	ctx, name := t.Context(), e.name("")
	var ids []string
	for _, b := range []string{"k1", "k2"} {
		send(t, e.q, name, body(b))
		d := recvOne(t, e.q, name, b, Long)
		if err := e.q.Kill(ctx, name, d.ReceiptHandle, "bad payload: "+b); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		ids = append(ids, d.MessageID)
		time.Sleep(10 * time.Millisecond) // distinct dead-letter times
	}
	recvNone(t, e.q, name, 100*time.Millisecond)
	dead := waitDead(t, e.dl, name, 2)
	for i, d := range dead {
		b := fmt.Sprintf("k%d", i+1)
		if d.MessageID != ids[i] || string(d.Body) != b || d.Queue != name || d.Reason != "bad payload: "+b ||
			d.ReceiveCount != 1 || !near(d.DeadAt) {
			t.Errorf("dead letter %d = %+v, want message %s %q of %s, reason %q, receive count 1, dead now",
				i, d, ids[i], b, name, "bad payload: "+b)
		}
	}
}

func testRedrive(t *testing.T, e env) {
	ctx, name := t.Context(), e.name("")
	for _, b := range []string{"r1", "r2"} {
		send(t, e.q, name, body(b))
		d := recvOne(t, e.q, name, b, Long)
		if err := e.q.Kill(ctx, name, d.ReceiptHandle, "retry later"); err != nil {
			t.Fatalf("Kill: %v", err)
		}
	}
	waitDead(t, e.dl, name, 2)
	n, err := e.dl.Redrive(ctx, name)
	if err != nil || n != 2 {
		t.Fatalf("Redrive = %d, %v; want 2", n, err)
	}
	if dead := listDead(t, e.dl, name); len(dead) != 0 {
		t.Errorf("after Redrive ListDead has %d letters", len(dead))
	}
	var got []string
	for len(got) < 2 {
		for _, d := range recvSome(t, e.q, name, 10, Long) {
			if d.ReceiveCount != 1 {
				t.Errorf("redriven %q: ReceiveCount %d, want 1 (reset)", d.Body, d.ReceiveCount)
			}
			got = append(got, string(d.Body))
			del(t, e.q, name, d)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"r1", "r2"}) {
		t.Errorf("redriven messages = %v, want [r1 r2]", got)
	}
	if n, err := e.dl.Redrive(ctx, name); err != nil || n != 0 {
		t.Errorf("second Redrive = %d, %v; want 0", n, err)
	}
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
