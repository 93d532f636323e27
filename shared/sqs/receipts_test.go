package sqs

import (
	"errors"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

func TestReceipts(t *testing.T) {
	r := newReceipts()
	soon := time.Now().Add(time.Minute)
	r.received("q", queue.Delivery{MessageID: "m", ReceiptHandle: "r1", Body: []byte("b"), ReceiveCount: 1}, "g", soon)
	if d, err := r.check("q", "r1"); err != nil || d == nil || string(d.body) != "b" || d.groupID != "g" || d.receiveCount != 1 {
		t.Fatalf("check(r1) = %+v, %v", d, err)
	}
	if d, err := r.check("other", "r1"); d != nil || err != nil {
		t.Errorf("check on another queue = %+v, %v; want unknown (SQS decides)", d, err)
	}
	if d, err := r.check("q", "never-seen"); d != nil || err != nil {
		t.Errorf("check(unknown) = %+v, %v; want unknown", d, err)
	}
	// Received again: r1 is superseded.
	r.received("q", queue.Delivery{MessageID: "m", ReceiptHandle: "r2", Body: []byte("b"), ReceiveCount: 2}, "g", soon)
	if _, err := r.check("q", "r1"); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Errorf("check(superseded) = %v", err)
	}
	// The same receipt reported twice (it cannot be, but) does not supersede itself.
	r.received("q", queue.Delivery{MessageID: "m", ReceiptHandle: "r2", Body: []byte("b"), ReceiveCount: 2}, "g", soon)
	if _, err := r.check("q", "r2"); err != nil {
		t.Errorf("check(r2) = %v", err)
	}
	r.use("r2")
	if _, err := r.check("q", "r2"); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Errorf("check(used) = %v", err)
	}
	// Sweeping drops what is older than keep.
	r.received("q", queue.Delivery{MessageID: "n", ReceiptHandle: "r3"}, "", time.Now().Add(-2*keep))
	r.sweep(time.Now().Add(2 * keep))
	if len(r.byReceipt) != 0 || len(r.current) != 0 {
		t.Errorf("after sweep: %d receipts, %d current", len(r.byReceipt), len(r.current))
	}
}
