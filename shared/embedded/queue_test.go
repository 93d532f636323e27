package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/queue/queuetest"
)

const testMaxReceives = 3

func queueTestDB(t testing.TB, path string) *embedded.DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "karma.db")
	}
	db, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newTestQueue(t testing.TB, db *embedded.DB) *embedded.Queue {
	t.Helper()
	q, err := embedded.NewQueue(context.Background(), db, embedded.QueueOptions{MaxReceives: testMaxReceives})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestQueueConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) (queue.Queue, queue.DeadLetters, int) {
		q := newTestQueue(t, queueTestDB(t, ""))
		return q, q, testMaxReceives
	})
}

// All subtests on one file, as the pipeline runs: queues must not see each other.
func TestQueueConformanceSharedFile(t *testing.T) {
	db := queueTestDB(t, "")
	queuetest.Run(t, func(t *testing.T) (queue.Queue, queue.DeadLetters, int) {
		q := newTestQueue(t, db)
		return q, q, testMaxReceives
	})
}

func TestQueueDeadLetterReason(t *testing.T) {
	ctx := t.Context()
	q := newTestQueue(t, queueTestDB(t, ""))
	if err := q.Send(ctx, "q", queue.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < testMaxReceives; i++ {
		ds, err := q.Receive(ctx, "q", 1, 0, 0) // visibility 0: visible again at once
		if err != nil || len(ds) != 1 || ds[0].ReceiveCount != i+1 {
			t.Fatalf("receive %d: %+v, %v", i+1, ds, err)
		}
	}
	if ds, err := q.Receive(ctx, "q", 1, 0, 0); err != nil || len(ds) != 0 {
		t.Fatalf("receive after max: %+v, %v; want nothing", ds, err)
	}
	dead, err := q.ListDead(ctx, "q")
	if err != nil || len(dead) != 1 {
		t.Fatalf("ListDead = %+v, %v", dead, err)
	}
	if want := fmt.Sprintf("max receives (%d) exceeded", testMaxReceives); dead[0].Reason != want ||
		dead[0].ReceiveCount != testMaxReceives {
		t.Errorf("dead letter reason %q count %d, want %q count %d", dead[0].Reason, dead[0].ReceiveCount, want, testMaxReceives)
	}
}

// A message dead-lettered on receive does not cost the batch a slot: the next one is delivered.
func TestQueueDeadLetterFillsBatch(t *testing.T) {
	ctx := t.Context()
	q := newTestQueue(t, queueTestDB(t, ""))
	if err := q.Send(ctx, "q", queue.Message{Body: []byte("poison")}); err != nil {
		t.Fatal(err)
	}
	for range testMaxReceives {
		if ds, err := q.Receive(ctx, "q", 1, 0, 0); err != nil || len(ds) != 1 {
			t.Fatalf("Receive = %+v, %v", ds, err)
		}
	}
	if err := q.Send(ctx, "q", queue.Message{Body: []byte("good")}); err != nil {
		t.Fatal(err)
	}
	ds, err := q.Receive(ctx, "q", 1, time.Minute, 0)
	if err != nil || len(ds) != 1 || string(ds[0].Body) != "good" {
		t.Fatalf("Receive = %+v, %v; want [good]", ds, err)
	}
}

func TestQueueValidation(t *testing.T) {
	ctx := t.Context()
	q := newTestQueue(t, queueTestDB(t, ""))
	for name, err := range map[string]error{
		"empty name":     q.Send(ctx, "", queue.Message{Body: []byte("x")}),
		"empty body":     q.Send(ctx, "q", queue.Message{}),
		"max 0":          second(q.Receive(ctx, "q", 0, time.Second, 0)),
		"max 11":         second(q.Receive(ctx, "q", 11, time.Second, 0)),
		"visibility -1":  second(q.Receive(ctx, "q", 1, -1, 0)),
		"garbage delete": q.Delete(ctx, "q", "nonsense"),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := q.Delete(ctx, "q", "12.abc"); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Errorf("Delete of an unknown message: %v, want ErrStaleReceipt", err)
	}
	if err := q.Send(ctx, "q"); err != nil {
		t.Errorf("Send of nothing: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// An idle Receive waits for its full wait, then returns nothing.
func TestQueueReceiveWaitsFull(t *testing.T) {
	q := newTestQueue(t, queueTestDB(t, ""))
	start := time.Now()
	ds, err := q.Receive(t.Context(), "q", 1, time.Second, 150*time.Millisecond)
	if elapsed := time.Since(start); err != nil || len(ds) != 0 || elapsed < 150*time.Millisecond {
		t.Errorf("Receive = %v, %v after %v; want nothing after >= 150ms", ds, err, elapsed)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := q.Receive(ctx, "q", 1, time.Second, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Receive with a cancelled context: %v", err)
	}
}

// A Send through another process (here: another DB handle on the file, whose Sends cannot wake
// this one) is picked up by polling.
func TestQueueReceiveSeesOtherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "karma.db")
	q1 := newTestQueue(t, queueTestDB(t, path))
	db2, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if _, err := db2.SQL.Exec(`INSERT INTO messages (id, queue, body, sent_at, visible_at)
		VALUES ('x', 'q', 'raw', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	ds, err := q1.Receive(t.Context(), "q", 1, time.Second, time.Second)
	if err != nil || len(ds) != 1 || string(ds[0].Body) != "raw" {
		t.Fatalf("Receive = %+v, %v", ds, err)
	}
}

// A process that dies holding a delivery loses nothing: after reopening the file, the message
// comes back once its visibility expires.
func TestQueueCrashRecovery(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "karma.db")
	db, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	q, err := embedded.NewQueue(ctx, db, embedded.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Send(ctx, "work", queue.Message{Body: []byte("job")}); err != nil {
		t.Fatal(err)
	}
	const vis = 300 * time.Millisecond
	ds, err := q.Receive(ctx, "work", 1, vis, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Receive = %+v, %v", ds, err)
	}
	received := time.Now()
	_ = db.Close() // the "crash": never deleted

	q2 := newTestQueue(t, queueTestDB(t, path))
	if again, err := q2.Receive(ctx, "work", 1, time.Minute, 0); err != nil || len(again) != 0 {
		t.Fatalf("Receive right after reopening = %+v, %v; want nothing (still invisible)", again, err)
	}
	again, err := q2.Receive(ctx, "work", 1, time.Minute, 5*time.Second)
	if err != nil || len(again) != 1 {
		t.Fatalf("Receive after the visibility = %+v, %v", again, err)
	}
	if time.Since(received) < vis-20*time.Millisecond {
		t.Errorf("message came back after %v, before its visibility %v", time.Since(received), vis)
	}
	if again[0].MessageID != ds[0].MessageID || again[0].ReceiveCount != 2 || string(again[0].Body) != "job" {
		t.Errorf("redelivery = %+v, want %s with ReceiveCount 2", again[0], ds[0].MessageID)
	}
	if err := q2.Delete(ctx, "work", ds[0].ReceiptHandle); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Errorf("Delete with the dead process's receipt: %v, want ErrStaleReceipt", err)
	}
	if err := q2.Delete(ctx, "work", again[0].ReceiptHandle); err != nil {
		t.Errorf("Delete: %v", err)
	}
}

// Two workers (on two Queue values of one file) each send 500 messages and consume from the
// shared queue, deleting promptly: every message is delivered exactly once.
func TestQueueConcurrentExactlyOnce(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	const workers, perWorker = 2, 500
	const total = workers * perWorker
	var mu sync.Mutex
	seen := map[string]int{}
	var delivered atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		q := newTestQueue(t, db)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := 0
			deadline := time.Now().Add(60 * time.Second)
			for delivered.Load() < total {
				if time.Now().After(deadline) {
					t.Errorf("worker %d: timed out with %d of %d delivered", w, delivered.Load(), total)
					return
				}
				if sent < perWorker {
					if err := q.Send(ctx, "shared", queue.Message{Body: fmt.Appendf(nil, "w%d-%d", w, sent)}); err != nil {
						t.Errorf("Send: %v", err)
						return
					}
					sent++
				}
				ds, err := q.Receive(ctx, "shared", 10, time.Minute, 10*time.Millisecond)
				if err != nil {
					t.Errorf("Receive: %v", err)
					return
				}
				for _, d := range ds {
					mu.Lock()
					seen[string(d.Body)]++
					mu.Unlock()
					if err := q.Delete(ctx, "shared", d.ReceiptHandle); err != nil {
						t.Errorf("Delete: %v", err)
						return
					}
					delivered.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != total {
		t.Errorf("%d distinct messages delivered, want %d", len(seen), total)
	}
	for b, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", b, n)
		}
	}
}

// BenchmarkQueueRoundTrip: send + receive + delete per message, in batches of 10.
func BenchmarkQueueRoundTrip(b *testing.B) {
	ctx := context.Background()
	q := newTestQueue(b, queueTestDB(b, ""))
	batch := make([]queue.Message, 10)
	for i := range batch {
		batch[i] = queue.Message{Body: []byte(`{"type":"component.changed","id":"dev/app/api","n":12345}`)}
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += len(batch) {
		if err := q.Send(ctx, "bench", batch...); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < len(batch); {
			ds, err := q.Receive(ctx, "bench", 10, time.Minute, 0)
			if err != nil {
				b.Fatal(err)
			}
			for _, d := range ds {
				if err := q.Delete(ctx, "bench", d.ReceiptHandle); err != nil {
					b.Fatal(err)
				}
			}
			got += len(ds)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// A receive hands out visible messages in the order they became visible, whether it takes them
// in one statement (a queue without FIFO groups) or plans first (one with them): a message whose
// visibility ran out comes after those sent before it ran out; an idle group's messages come
// together, at the place of its first.
func TestQueueReceiveOrder(t *testing.T) {
	ctx := t.Context()
	q := newTestQueue(t, queueTestDB(t, ""))
	send := func(name string, msgs ...queue.Message) {
		t.Helper()
		if err := q.Send(ctx, name, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	recv := func(name string, max int, visibility time.Duration) (got []string) {
		t.Helper()
		ds, err := q.Receive(ctx, name, max, visibility, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			got = append(got, string(d.Body))
			if err := q.Delete(ctx, name, d.ReceiptHandle); err != nil {
				t.Fatalf("Delete(%s): %v", d.Body, err)
			}
		}
		return got
	}
	m := func(body, group string) queue.Message { return queue.Message{Body: []byte(body), GroupID: group} }

	send("std", m("a", ""))
	before := embedded.Counters()
	ds, err := q.Receive(ctx, "std", 1, 30*time.Millisecond, 0) // a: hidden for 30 ms, not deleted
	if err != nil || len(ds) != 1 || string(ds[0].Body) != "a" {
		t.Fatalf("first receive: %+v, %v", ds, err)
	}
	if got := embedded.Counters().Sub(before).Statements(); got != 1 {
		t.Errorf("a receive from a queue without groups took %d statements, want 1", got)
	}
	send("std", m("b", ""), m("c", ""))
	time.Sleep(50 * time.Millisecond) // a visible again, after b and c
	send("std", m("d", ""))
	if got, want := fmt.Sprint(recv("std", 10, time.Minute)), "[b c a d]"; got != want {
		t.Errorf("standard queue: received %s, want %s", got, want)
	}

	send("mixed", m("u1", ""), m("g1", "G"), m("u2", ""), m("g2", "G"), m("h1", "H"))
	if got, want := fmt.Sprint(recv("mixed", 10, time.Minute)), "[u1 g1 g2 u2 h1]"; got != want {
		t.Errorf("queue with groups: received %s, want %s", got, want)
	}
}
