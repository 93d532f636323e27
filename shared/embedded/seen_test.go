package embedded_test

import (
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/pipeline/seentest"
)

func TestSeenConformance(t *testing.T) {
	seentest.Run(t, func(t *testing.T) pipeline.Seen {
		s, err := embedded.NewSeen(t.Context(), queueTestDB(t, ""))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestSeenConformanceSharedFile(t *testing.T) {
	db := queueTestDB(t, "")
	var once sync.Once
	var s *embedded.Seen
	seentest.Run(t, func(t *testing.T) pipeline.Seen {
		once.Do(func() {
			var err error
			if s, err = embedded.NewSeen(t.Context(), db); err != nil {
				t.Fatal(err)
			}
		})
		return s
	})
}

// Two processes on one file: each has its own Seen.
func TestSeenHoldersConformance(t *testing.T) {
	db := queueTestDB(t, "")
	seentest.RunHolders(t, func(t *testing.T) (pipeline.Seen, pipeline.Seen) {
		a, err := embedded.NewSeen(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		b, err := embedded.NewSeen(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	})
}

func TestRecordsConformance(t *testing.T) {
	db := queueTestDB(t, "")
	seentest.RunRecords(t, func(t *testing.T) pipeline.Records {
		s, err := embedded.NewSeen(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// A claim taken over by ClaimAll (a batch, an exchange) after Claim's ran out is the batch's: the
// first holder's Release leaves it, and its Renew reports its own claim lost.
func TestClaimAllTakesOverAClaimFromItsFirstHolder(t *testing.T) {
	db := queueTestDB(t, "")
	a, err := embedded.NewSeen(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	b, err := embedded.NewSeen(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Claim(t.Context(), "k", 50*time.Millisecond); !ok || err != nil {
		t.Fatalf("Claim = %v, %v", ok, err)
	}
	time.Sleep(200 * time.Millisecond)
	if st, err := b.ClaimAll(t.Context(), []string{"k"}, time.Minute); err != nil || st[0] != pipeline.ClaimTaken {
		t.Fatalf("ClaimAll = %v, %v; want the key taken over", st, err)
	}
	if live, err := a.Renew(t.Context(), "k", time.Minute); live || err != nil {
		t.Errorf("the first holder's Renew = %v, %v; want its claim lost", live, err)
	}
	if err := a.Release(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Claim(t.Context(), "k", time.Minute); ok || err != nil {
		t.Errorf("Claim after the first holder's Release = %v, %v; want the batch's claim to hold", ok, err)
	}
}
