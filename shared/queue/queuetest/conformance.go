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
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

// Long is the visibility used where a message must stay hidden for the whole subtest.
const Long = 30 * time.Second

// patience bounds every wait for something that must happen (a message coming back, a dead
// letter showing up); a wait ends as soon as it happens, so only a failure waits this long.
// Generous: SQS rounds to seconds, moto under a full test run has answered receives with
// nothing for 10 s (a clean-clone run of 2026-12-04 failed Redrive so, on a message just sent),
// and a receive whose answer is lost and retried by the SDK leaves the message hidden for its
// visibility (Long) before it comes back.
const patience = Long + 15*time.Second

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
