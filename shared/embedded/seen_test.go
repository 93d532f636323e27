package embedded_test

import (
	"sync"
	"testing"

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
