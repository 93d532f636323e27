package seentest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/pipeline"
)

// RunRecords runs the pipeline.Records suite as parallel subtests of t (same rules as Run: the
// subtests use keys under their own random prefix, newRecords may return one shared store).
//   - Recorded is "" for a key never recorded.
//   - RecordFirst stores a value under a key that has none and returns it; later calls return
//     the first value whatever they pass; of concurrent RecordFirsts of one key exactly one
//     value wins, and every call returns it.
func RunRecords(t *testing.T, newRecords func(t *testing.T) pipeline.Records) {
	t.Helper()
	root := fmt.Sprintf("records-%08x", rand.Uint32())
	tests := []struct {
		name string
		run  func(t *testing.T, r pipeline.Records, p string)
	}{
		{"FirstWins", testFirstWins},
		{"ConcurrentFirstWins", testConcurrentFirst},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newRecords(t), root+"-"+strings.ToLower(tc.name))
		})
	}
}

func recorded(t *testing.T, r pipeline.Records, key, want string) {
	t.Helper()
	got, err := r.Recorded(t.Context(), key)
	if err != nil || got != want {
		t.Fatalf("Recorded(%q) = %q, %v; want %q", key, got, err, want)
	}
}

func recordFirst(t *testing.T, r pipeline.Records, key, value, want string) {
	t.Helper()
	got, err := r.RecordFirst(t.Context(), key, value)
	if err != nil || got != want {
		t.Fatalf("RecordFirst(%q, %q) = %q, %v; want %q", key, value, got, err, want)
	}
}

func testFirstWins(t *testing.T, r pipeline.Records, p string) {
	k := p + "|change|git:0123456789abcdef0123456789abcdef01234567"
	recorded(t, r, k, "")
	recordFirst(t, r, k, "change-1", "change-1")
	recordFirst(t, r, k, "change-1", "change-1")
	recordFirst(t, r, k, "change-2", "change-1")
	recorded(t, r, k, "change-1")
	recorded(t, r, k+"x", "") // another key
	odd := p + "|with spaces, quotes ' \" and # / % ? unicode é 日本"
	recordFirst(t, r, odd, "v é", "v é")
	recorded(t, r, odd, "v é")
}

func testConcurrentFirst(t *testing.T, r pipeline.Records, p string) {
	const callers = 16
	k := p + "|k"
	got := make([]string, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			v, err := r.RecordFirst(t.Context(), k, fmt.Sprintf("v%d", i))
			if err != nil {
				t.Errorf("concurrent RecordFirst: %v", err)
			}
			got[i] = v
		}()
	}
	close(start)
	wg.Wait()
	for i, v := range got {
		if v != got[0] || !strings.HasPrefix(v, "v") {
			t.Fatalf("caller %d got %q, caller 0 %q: want one value for all", i, v, got[0])
		}
	}
	recorded(t, r, k, got[0])
}
