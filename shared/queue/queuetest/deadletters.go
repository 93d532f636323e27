package queuetest

// Subtests of dead letters: after maxReceives receives, Kill, Redrive.

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

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
