package queuetest

import (
	"testing"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

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
