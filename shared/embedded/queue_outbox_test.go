package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

func newTestSeen(t testing.TB, db *embedded.DB) *embedded.Seen {
	t.Helper()
	s, err := embedded.NewSeen(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sendBodies(t testing.TB, q *embedded.Queue, name string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if err := q.Send(context.Background(), name, queue.Message{Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
}

func bodiesOf(ds []queue.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, string(d.Body))
	}
	return out
}

// drainQueue receives (and deletes) everything visible on name.
func drainQueue(t testing.TB, q *embedded.Queue, name string) []string {
	t.Helper()
	var out []string
	for {
		ds, err := q.Receive(context.Background(), name, 10, time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			return out
		}
		for _, d := range ds {
			out = append(out, string(d.Body))
			if err := q.Delete(context.Background(), name, d.ReceiptHandle); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestExchangeSettlesEveryKindOfDelivery(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	q, seen := newTestQueue(t, db), newTestSeen(t, db)
	sendBodies(t, q, "in", "stale")
	ds, err := q.Receive(ctx, "in", 10, 30*time.Millisecond, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Receive = %d, %v", len(ds), err)
	}
	sendBodies(t, q, "in", "ack", "dup", "dead", "retry", "hide")
	rest, err := q.Receive(ctx, "in", 10, time.Minute, 0)
	if err != nil || len(rest) != 5 {
		t.Fatalf("Receive = %d, %v", len(rest), err)
	}
	ds = append(ds, rest...)
	if ok, err := seen.Claim(ctx, "in|ack", time.Hour); !ok || err != nil {
		t.Fatalf("Claim = %v, %v", ok, err)
	}
	if ok, err := seen.Claim(ctx, "in|retry", time.Hour); !ok || err != nil {
		t.Fatalf("Claim = %v, %v", ok, err)
	}
	// A key marked already, which a claim holds all the same: marking it again drops the claim.
	if err := seen.Mark(ctx, "in|dup"); err != nil {
		t.Fatal(err)
	}
	if ok, err := seen.Claim(ctx, "in|dup", time.Hour); !ok || err != nil {
		t.Fatalf("Claim = %v, %v", ok, err)
	}
	// "stale" is received again (its visibility expired): the first receipt is no longer current.
	time.Sleep(40 * time.Millisecond)
	if again, err := q.Receive(ctx, "in", 10, time.Minute, 0); err != nil || !slices.Equal(bodiesOf(again), []string{"stale"}) {
		t.Fatalf("second Receive = %v, %v", bodiesOf(again), err)
	}
	byBody := map[string]queue.Delivery{}
	for _, d := range ds {
		byBody[string(d.Body)] = d
	}
	settle := func(body string, a pipeline.Action) pipeline.Settlement {
		return pipeline.Settlement{Queue: "in", Receipt: byBody[body].ReceiptHandle, Action: a, RetryAfter: -1}
	}
	ack := settle("ack", pipeline.Ack)
	ack.Sends = []pipeline.Outgoing{{Queue: "out", Message: queue.Message{Body: []byte("o1")}}, {Queue: "audit", Message: queue.Message{Body: []byte("o1")}}}
	ack.Marks = []string{"in|ack"}
	dead := settle("dead", pipeline.DeadLetter)
	dead.Reason = "poison"
	retry := settle("retry", pipeline.Retry)
	retry.RetryAfter = 0
	retry.Releases = []string{"in|retry"}
	hide := settle("hide", pipeline.Retry)
	hide.RetryAfter = time.Hour
	stale := settle("stale", pipeline.Ack)
	publishOnly := pipeline.Settlement{Sends: []pipeline.Outgoing{{Queue: "out", Message: queue.Message{Body: []byte("o2")}}}}

	dup := settle("dup", pipeline.Duplicate)
	dup.Marks = []string{"in|dup"}
	ex, err := q.Exchange(ctx, []pipeline.Settlement{ack, dup, dead, retry, hide, stale, publishOnly}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, nil, nil, nil, nil, queue.ErrStaleReceipt, nil} {
		if got := ex.Acks[i]; (want == nil) != (got == nil) || (want != nil && !errors.Is(got, want)) {
			t.Errorf("Acks[%d] = %v, want %v", i, got, want)
		}
	}
	if got := drainQueue(t, q, "out"); !slices.Equal(got, []string{"o1", "o2"}) {
		t.Errorf("out = %v, want the sends in order", got)
	}
	if got := drainQueue(t, q, "audit"); !slices.Equal(got, []string{"o1"}) {
		t.Errorf("audit = %v", got)
	}
	if done, _ := seen.Done(ctx, "in|ack"); !done {
		t.Error("the mark was not recorded")
	}
	if ok, _ := seen.Claim(ctx, "in|ack", time.Hour); !ok {
		t.Error("marking did not drop the claim")
	}
	if ok, _ := seen.Claim(ctx, "in|retry", time.Hour); !ok {
		t.Error("the release did not drop the claim")
	}
	if ok, _ := seen.Claim(ctx, "in|dup", time.Hour); !ok {
		t.Error("marking a key marked already did not drop its claim")
	}
	if done, _ := seen.Done(ctx, "in|retry"); done {
		t.Error("a release marked the key done")
	}
	dl, _ := q.ListDead(ctx, "in")
	if len(dl) != 1 || string(dl[0].Body) != "dead" || dl[0].Reason != "poison" {
		t.Errorf("dead letters = %+v", dl)
	}
	// Left: "retry" (visible again at once), "hide" (hidden for an hour), "stale" (held by its
	// second receipt).
	if got := bodiesOf(mustReceive(t, q, "in")); !slices.Equal(got, []string{"retry"}) {
		t.Errorf("visible on in = %v, want [retry]", got)
	}
	if n, _ := q.Depth(ctx, "in"); n != 3 {
		t.Errorf("depth of in = %d, want 3 (retry, hide, stale)", n)
	}
}

func mustReceive(t testing.TB, q *embedded.Queue, name string) []queue.Delivery {
	t.Helper()
	ds, err := q.Receive(context.Background(), name, 10, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// A failing statement commits nothing: here the marks' table does not exist (no Seen on the file).
func TestExchangeFailureCommitsNothing(t *testing.T) {
	ctx := t.Context()
	q := newTestQueue(t, queueTestDB(t, ""))
	sendBodies(t, q, "in", "m")
	d := mustReceive(t, q, "in")[0]
	_, err := q.Exchange(ctx, []pipeline.Settlement{{Queue: "in", Receipt: d.ReceiptHandle, Action: pipeline.Ack, RetryAfter: -1,
		Sends: []pipeline.Outgoing{{Queue: "out", Message: queue.Message{Body: []byte("o")}}}, Marks: []string{"k"}}}, nil)
	if err == nil {
		t.Fatal("Exchange succeeded without a handled table")
	}
	if n, _ := q.Depth(ctx, "out"); n != 0 {
		t.Errorf("%d messages sent by a failed exchange", n)
	}
	if err := q.Delete(ctx, "in", d.ReceiptHandle); err != nil {
		t.Errorf("the delivery was acknowledged by a failed exchange: %v", err)
	}
}

func TestExchangeValidates(t *testing.T) {
	q := newTestQueue(t, queueTestDB(t, ""))
	for name, tt := range map[string]struct {
		batch []pipeline.Settlement
		recv  *pipeline.Receiving
	}{
		"empty queue name":  {batch: []pipeline.Settlement{{Sends: []pipeline.Outgoing{{Message: queue.Message{Body: []byte("x")}}}}}},
		"empty body":        {batch: []pipeline.Settlement{{Sends: []pipeline.Outgoing{{Queue: "q"}}}}},
		"receipt, no queue": {batch: []pipeline.Settlement{{Receipt: "1.x"}}},
		"receive max 0":     {recv: &pipeline.Receiving{Queue: "q"}},
		"receive max 11":    {recv: &pipeline.Receiving{Queue: "q", Max: 11}},
		"receive no queue":  {recv: &pipeline.Receiving{Max: 1}},
		"visibility > 12h":  {recv: &pipeline.Receiving{Queue: "q", Max: 1, Visibility: 13 * time.Hour}},
	} {
		if _, err := q.Exchange(t.Context(), tt.batch, tt.recv); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestExchangeReceivesAndClaims(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	q, seen := newTestQueue(t, db), newTestSeen(t, db)
	if err := seen.Mark(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := seen.Claim(ctx, "held", time.Hour); !ok {
		t.Fatal("Claim(held)")
	}
	if ok, _ := seen.Claim(ctx, "expired", time.Millisecond); !ok {
		t.Fatal("Claim(expired)")
	}
	time.Sleep(5 * time.Millisecond)
	sendBodies(t, q, "in", "new", "done", "held", "expired", "new", "nokey")
	var calls int
	recv := &pipeline.Receiving{Queue: "in", Max: 10, Visibility: time.Minute, Lease: time.Hour,
		Keys: func(ds []queue.Delivery) []string {
			calls++
			keys := bodiesOf(ds)
			for i, k := range keys {
				if k == "nokey" {
					keys[i] = ""
				}
			}
			return keys
		}}
	ex, err := q.Exchange(ctx, nil, recv)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || len(ex.Deliveries) != 6 || len(ex.Claims) != 6 {
		t.Fatalf("Keys called %d times; %d deliveries, %d claims", calls, len(ex.Deliveries), len(ex.Claims))
	}
	want := []pipeline.ClaimState{pipeline.ClaimTaken, pipeline.ClaimDone, pipeline.ClaimHeld, pipeline.ClaimTaken, pipeline.ClaimHeld, pipeline.ClaimTaken}
	if !slices.Equal(ex.Claims, want) {
		t.Errorf("claims of %v = %v, want %v", bodiesOf(ex.Deliveries), ex.Claims, want)
	}
	// The claims are real: another worker cannot take them.
	for _, k := range []string{"new", "expired"} {
		if ok, _ := seen.Claim(ctx, k, time.Hour); ok {
			t.Errorf("%s was claimed again", k)
		}
	}
	// ClaimAll gives the same answers in its own transaction.
	got, err := seen.ClaimAll(ctx, []string{"done", "held", "fresh", "fresh"}, time.Hour)
	if err != nil || !slices.Equal(got, []pipeline.ClaimState{pipeline.ClaimDone, pipeline.ClaimHeld, pipeline.ClaimTaken, pipeline.ClaimHeld}) {
		t.Errorf("ClaimAll = %v, %v", got, err)
	}
}

// Exchange with Wait waits for a send (woken at once) and, after this process drained the
// queue, still sees what another process sends (by polling).
func TestExchangeWaits(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "karma.db")
	q := newTestQueue(t, queueTestDB(t, path))
	recv := &pipeline.Receiving{Queue: "in", Max: 10, Visibility: time.Minute, Wait: 5 * time.Second}
	if ex, err := q.Exchange(ctx, nil, &pipeline.Receiving{Queue: "in", Max: 10, Visibility: time.Minute}); err != nil || len(ex.Deliveries) != 0 {
		t.Fatalf("Exchange on an empty queue = %+v, %v", ex, err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		sendBodies(t, q, "in", "woken")
	}()
	start := time.Now()
	ex, err := q.Exchange(ctx, nil, recv)
	if err != nil || !slices.Equal(bodiesOf(ex.Deliveries), []string{"woken"}) {
		t.Fatalf("Exchange = %v, %v", bodiesOf(ex.Deliveries), err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("woken after %v", el)
	}
	// Drained now, as far as this process knows; another process sends.
	if ex, _ := q.Exchange(ctx, nil, &pipeline.Receiving{Queue: "in", Max: 10, Visibility: time.Minute}); len(ex.Deliveries) != 0 {
		t.Fatalf("received %v", bodiesOf(ex.Deliveries))
	}
	db2, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if _, err := db2.SQL.Exec(`INSERT INTO messages (id, queue, body, sent_at, visible_at) VALUES ('x', 'in', 'other', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	if ex, err := q.Exchange(ctx, nil, recv); err != nil || !slices.Equal(bodiesOf(ex.Deliveries), []string{"other"}) {
		t.Fatalf("Exchange after another process's send = %v, %v", bodiesOf(ex.Deliveries), err)
	}
	// A cancelled wait after committed settlements is not an error: they are committed.
	sendBodies(t, q, "in", "last")
	d := mustReceive(t, q, "in")[0]
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	ex, err = q.Exchange(cctx, []pipeline.Settlement{{Queue: "in", Receipt: d.ReceiptHandle, Action: pipeline.Ack, RetryAfter: -1}}, recv)
	if err != nil || len(ex.Acks) != 1 || ex.Acks[0] != nil {
		t.Fatalf("Exchange = %+v, %v", ex, err)
	}
	if err := q.Delete(ctx, "in", d.ReceiptHandle); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Errorf("Delete after the exchange acknowledged it: %v, want a stale receipt (already gone)", err)
	}
}

// Exchanges from many goroutines (group commit) each get their own results.
func TestExchangeConcurrent(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	q := newTestQueue(t, db)
	const n = 40
	for i := range n {
		sendBodies(t, q, "in", fmt.Sprint(i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds, err := q.Receive(ctx, "in", 1, time.Minute, time.Second)
			if err != nil || len(ds) != 1 {
				errs <- fmt.Errorf("receive: %d, %v", len(ds), err)
				return
			}
			ex, err := q.Exchange(ctx, []pipeline.Settlement{{Queue: "in", Receipt: ds[0].ReceiptHandle, Action: pipeline.Ack, RetryAfter: -1,
				Sends: []pipeline.Outgoing{{Queue: "out", Message: queue.Message{Body: ds[0].Body}}}}}, nil)
			if err == nil && ex.Acks[0] != nil {
				err = ex.Acks[0]
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := drainQueue(t, q, "out")
	slices.Sort(got)
	if len(got) != n || len(slices.Compact(slices.Clone(got))) != n {
		t.Errorf("out has %d messages, want %d distinct ones", len(got), n)
	}
	if d, _ := q.Depth(ctx, "in"); d != 0 {
		t.Errorf("depth of in = %d", d)
	}
}

func TestRecordsOnlyItsOwnFile(t *testing.T) {
	db := queueTestDB(t, "")
	q := newTestQueue(t, db)
	if !q.Records(newTestSeen(t, db)) {
		t.Error("Records(Seen of the same file) = false")
	}
	if q.Records(newTestSeen(t, queueTestDB(t, ""))) {
		t.Error("Records(Seen of another file) = true")
	}
	if q.Records(nil) {
		t.Error("Records(nil) = true")
	}
}

// Ten acknowledgements in one exchange are one statement; each is still checked on its own: a
// delivery acknowledged twice is deleted once (the second finds its receipt stale), a receipt of
// another queue deletes nothing there.
func TestExchangeAcknowledgesManyAtOnce(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	q := newTestQueue(t, db)
	for i := range 10 {
		sendBodies(t, q, "in", fmt.Sprintf("m%d", i))
	}
	sendBodies(t, q, "other", "o")
	ds := mustReceive(t, q, "in")
	other := mustReceive(t, q, "other")
	if len(ds) != 10 || len(other) != 1 {
		t.Fatalf("received %d and %d", len(ds), len(other))
	}
	var batch []pipeline.Settlement
	for _, d := range ds {
		batch = append(batch, pipeline.Settlement{Queue: "in", Receipt: d.ReceiptHandle, Action: pipeline.Ack})
	}
	batch = append(batch, pipeline.Settlement{Queue: "in", Receipt: ds[3].ReceiptHandle, Action: pipeline.Ack},
		pipeline.Settlement{Queue: "in", Receipt: other[0].ReceiptHandle, Action: pipeline.Ack})
	ex, err := q.Exchange(ctx, batch, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, got := range ex.Acks {
		if want := i >= 10; want != errors.Is(got, queue.ErrStaleReceipt) {
			t.Errorf("Acks[%d] = %v", i, got)
		}
	}
	if n, _ := q.Depth(ctx, "in"); n != 0 {
		t.Errorf("in holds %d", n)
	}
	if n, _ := q.Depth(ctx, "other"); n != 1 {
		t.Errorf("other holds %d, want its message (acknowledged on the wrong queue)", n)
	}
}

// What a receive moves to the dead letters instead of delivering it (out of receives) is
// returned with the exchange, whether the receive came first or while it waited, so that the
// runner can say so.
func TestExchangeReturnsWhatItsReceiveDeadLettered(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, filepath.Join(t.TempDir(), "karma.db"))
	q, err := embedded.NewQueue(ctx, db, embedded.QueueOptions{MaxReceives: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, wait := range []time.Duration{0, time.Second} {
		body := fmt.Sprintf("spent-%v", wait)
		sendBodies(t, q, "in", body)
		// Its one receive, by a holder that died.
		const visibility = 300 * time.Millisecond
		if ds, err := q.Receive(ctx, "in", 1, visibility, 0); err != nil || len(ds) != 1 {
			t.Fatalf("Receive = %v, %v", bodiesOf(ds), err)
		}
		if wait > 0 {
			// A receive finding it in flight and nothing else: this process thinks the queue
			// drained, so the exchange receives only while it waits.
			if ds, err := q.Receive(ctx, "in", 10, time.Minute, 0); err != nil || len(ds) != 0 {
				t.Fatalf("Receive = %v, %v", bodiesOf(ds), err)
			}
		}
		time.Sleep(visibility + 50*time.Millisecond)
		ex, err := q.Exchange(ctx, nil, &pipeline.Receiving{Queue: "in", Max: 10, Visibility: time.Minute, Wait: wait})
		if err != nil || len(ex.Deliveries) != 0 {
			t.Fatalf("wait %v: Exchange = %v, %v", wait, bodiesOf(ex.Deliveries), err)
		}
		if len(ex.Dead) != 1 || string(ex.Dead[0].Body) != body || ex.Dead[0].Reason != "max receives (1) exceeded" || ex.Dead[0].Queue != "in" {
			t.Errorf("wait %v: Dead = %+v, want %q dead-lettered for max receives", wait, ex.Dead, body)
		}
	}
}
