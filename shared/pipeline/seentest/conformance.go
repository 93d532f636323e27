// Package seentest is the conformance suite every pipeline.Seen passes: the embedded SQLite
// store and the DynamoDB store (against DynamoDB Local or a real table).
//
// Contract of Run:
//   - newSeen is called once per subtest (the subtests run in parallel) and may return the same
//     store every time: every subtest uses keys carrying its own random prefix. Nothing is
//     cleaned up.
//   - Done is false until Mark; Mark is idempotent and drops the key's claim (so a later
//     Claim succeeds: Claim checks claims only, Done is the caller's first question).
//   - Claim succeeds unless a live claim holds the key; Release drops a claim; a claim whose
//     lease ran out can be taken again; of concurrent Claims of one key exactly one wins.
//   - Release of a key never claimed, and Done of a key never marked, are not errors.
//   - Renew (every store is a pipeline.Renewer) extends a live claim, so it outlives its first
//     lease; it reports false, and takes nothing, for a key whose claim ran out or was released.
//   - RunHolders (two Seens on one store, as two processes have): Release and Renew act only on
//     the claim their Seen took; a claim that ran out and was taken over by the other is left
//     alone (Renew reports it lost), so no third claimant gets the key while the other works.
//   - Leases are measured by the store's clock; the expiry subtest waits 300 ms past a 100 ms
//     lease, so a backend's clock may lag the test's by up to ~200 ms.
package seentest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/pipeline"
)

// Run runs the suite as parallel subtests of t.
func Run(t *testing.T, newSeen func(t *testing.T) pipeline.Seen) {
	t.Helper()
	root := fmt.Sprintf("seent-%08x", rand.Uint32())
	tests := []struct {
		name string
		run  func(t *testing.T, s pipeline.Seen, p string)
	}{
		{"Lifecycle", testLifecycle},
		{"ReleaseLetsClaimAgain", testRelease},
		{"ExpiredClaimCanBeRetaken", testExpired},
		{"RenewExtendsALiveClaim", testRenew},
		{"ConcurrentClaimsOneWins", testConcurrent},
		{"MarkWithoutClaim", testMarkWithoutClaim},
		{"KeysAreIndependent", testIndependent},
		{"OddKeys", testOddKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newSeen(t), root+"-"+strings.ToLower(tc.name))
		})
	}
}

func done(t *testing.T, s pipeline.Seen, key string, want bool) {
	t.Helper()
	got, err := s.Done(t.Context(), key)
	if err != nil {
		t.Fatalf("Done(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("Done(%q) = %v, want %v", key, got, want)
	}
}

func claim(t *testing.T, s pipeline.Seen, key string, lease time.Duration, want bool) {
	t.Helper()
	got, err := s.Claim(t.Context(), key, lease)
	if err != nil {
		t.Fatalf("Claim(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("Claim(%q, %v) = %v, want %v", key, lease, got, want)
	}
}

func ok(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func testLifecycle(t *testing.T, s pipeline.Seen, p string) {
	k := p + "|stage|id:1"
	done(t, s, k, false)
	claim(t, s, k, time.Minute, true)
	claim(t, s, k, time.Minute, false) // live claim
	done(t, s, k, false)               // claimed is not done
	ok(t, "Mark", s.Mark(t.Context(), k))
	done(t, s, k, true)
	ok(t, "Mark again", s.Mark(t.Context(), k))
	done(t, s, k, true)
	claim(t, s, k, time.Minute, true) // Mark dropped the claim
	ok(t, "Release", s.Release(t.Context(), k))
	done(t, s, k, true) // Release does not undo Mark
}

func testRelease(t *testing.T, s pipeline.Seen, p string) {
	k := p + "|k"
	claim(t, s, k, time.Minute, true)
	ok(t, "Release", s.Release(t.Context(), k))
	done(t, s, k, false)
	claim(t, s, k, time.Minute, true)
	ok(t, "Release of a key never claimed", s.Release(t.Context(), p+"|never"))
	ok(t, "Release twice", s.Release(t.Context(), p+"|never"))
}

func testExpired(t *testing.T, s pipeline.Seen, p string) {
	k := p + "|k"
	claim(t, s, k, 100*time.Millisecond, true)
	claim(t, s, k, time.Minute, false)
	time.Sleep(400 * time.Millisecond)
	claim(t, s, k, time.Minute, true) // the holder died: its lease ran out
	claim(t, s, k, time.Minute, false)
}

func renew(t *testing.T, s pipeline.Seen, key string, lease time.Duration, want bool) {
	t.Helper()
	r, ok := s.(pipeline.Renewer)
	if !ok {
		t.Fatalf("%T is not a pipeline.Renewer", s)
	}
	got, err := r.Renew(t.Context(), key, lease)
	if err != nil {
		t.Fatalf("Renew(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("Renew(%q, %v) = %v, want %v", key, lease, got, want)
	}
}

func testRenew(t *testing.T, s pipeline.Seen, p string) {
	k := p + "|k"
	renew(t, s, k, time.Minute, false) // never claimed: nothing to renew, nothing taken
	claim(t, s, k, time.Minute, true)
	ok(t, "Release", s.Release(t.Context(), k))
	renew(t, s, k, time.Minute, false) // released
	claim(t, s, k, 300*time.Millisecond, true)
	renew(t, s, k, time.Minute, true)
	time.Sleep(600 * time.Millisecond) // past the first lease
	claim(t, s, k, time.Minute, false) // the renewed claim still holds
	e := p + "|expired"
	claim(t, s, e, 100*time.Millisecond, true)
	time.Sleep(400 * time.Millisecond)
	renew(t, s, e, time.Minute, false) // ran out: its holder is presumed dead
	claim(t, s, e, time.Minute, true)
}

func testConcurrent(t *testing.T, s pipeline.Seen, p string) {
	const claimants, rounds = 16, 5
	for r := range rounds {
		k := fmt.Sprintf("%s|k%d", p, r)
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, claimants)
		for range claimants {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got, err := s.Claim(t.Context(), k, time.Minute)
				if err != nil {
					errs <- err
				}
				if got {
					wins.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent Claim: %v", err)
		}
		if n := wins.Load(); n != 1 {
			t.Errorf("round %d: %d of %d concurrent Claims won, want exactly 1", r, n, claimants)
		}
	}
}

func testMarkWithoutClaim(t *testing.T, s pipeline.Seen, p string) {
	k := p + "|k"
	ok(t, "Mark", s.Mark(t.Context(), k))
	done(t, s, k, true)
	claim(t, s, k, time.Minute, true)
	claim(t, s, k, time.Minute, false)
}

func testIndependent(t *testing.T, s pipeline.Seen, p string) {
	a, b := p+"|a", p+"|b"
	claim(t, s, a, time.Minute, true)
	claim(t, s, b, time.Minute, true)
	ok(t, "Mark a", s.Mark(t.Context(), a))
	done(t, s, a, true)
	done(t, s, b, false)
	claim(t, s, b, time.Minute, false)
	// A prefix of a key is another key.
	done(t, s, p+"|", false)
	claim(t, s, p+"|", time.Minute, true)
}

func testOddKeys(t *testing.T, s pipeline.Seen, p string) {
	for _, k := range []string{
		p + "|deployment.scheduled:dep-0123456789abcdef",
		p + "|id:9f8e7d6c-5b4a-3210-fedc-ba9876543210",
		p + "|with spaces, quotes ' \" and # / % ? unicode é 日本",
		p + "|" + strings.Repeat("x", 500),
	} {
		done(t, s, k, false)
		claim(t, s, k, time.Minute, true)
		claim(t, s, k, time.Minute, false)
		ok(t, "Mark", s.Mark(t.Context(), k))
		done(t, s, k, true)
	}
}

// RunHolders runs, as parallel subtests of t, the cases that need two workers on one store:
// newPair returns two Seens on the same storage, as two processes would have.
func RunHolders(t *testing.T, newPair func(t *testing.T) (a, b pipeline.Seen)) {
	t.Helper()
	root := fmt.Sprintf("seenh-%08x", rand.Uint32())
	tests := []struct {
		name string
		run  func(t *testing.T, a, b pipeline.Seen, p string)
	}{
		{"TakenOverClaimIsNotReleasedNorRenewed", testTakenOver},
		{"ReleaseAndRenewOfOwnClaim", testOwnClaim},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := newPair(t)
			tc.run(t, a, b, root+"-"+strings.ToLower(tc.name))
		})
	}
}

// testTakenOver: a's claim runs out while its handler works; b takes the key over. a's handler
// then fails and releases (or its renewal comes late): b's claim must hold, or a third worker
// would run the key's work beside b's.
func testTakenOver(t *testing.T, a, b pipeline.Seen, p string) {
	k := p + "|k"
	claim(t, a, k, 100*time.Millisecond, true)
	time.Sleep(400 * time.Millisecond)
	claim(t, b, k, time.Minute, true)  // a's ran out: taken over
	renew(t, a, k, time.Minute, false) // a's claim is lost, b's not extended by a
	ok(t, "Release by the first holder", a.Release(t.Context(), k))
	claim(t, a, k, time.Minute, false) // b's claim holds
	claim(t, b, k, time.Minute, false)
	renew(t, b, k, time.Minute, true)
	ok(t, "Release by the holder", b.Release(t.Context(), k))
	claim(t, a, k, time.Minute, true)
}

// testOwnClaim: each Seen releases and renews the claims it took, whichever took the key last.
func testOwnClaim(t *testing.T, a, b pipeline.Seen, p string) {
	k := p + "|k"
	claim(t, a, k, time.Minute, true)
	claim(t, b, k, time.Minute, false)
	renew(t, a, k, time.Minute, true)
	renew(t, b, k, time.Minute, false)
	ok(t, "Release by another", b.Release(t.Context(), k))
	claim(t, b, k, time.Minute, false)
	ok(t, "Release", a.Release(t.Context(), k))
	claim(t, b, k, time.Minute, true)
	renew(t, b, k, time.Minute, true)
	ok(t, "Mark", b.Mark(t.Context(), k))
	done(t, a, k, true)
	claim(t, a, k, time.Minute, true) // Mark dropped the claim
	ok(t, "Release", a.Release(t.Context(), k))
	claim(t, b, k, time.Minute, true)
}
