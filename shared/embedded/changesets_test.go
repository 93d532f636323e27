package embedded_test

import (
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/changeset/changesettest"
	"github.com/usekarma/karma/shared/embedded"
)

func TestChangeSetsConformance(t *testing.T) {
	changesettest.Run(t, func(t *testing.T) changeset.Store {
		s, err := embedded.NewChangeSets(t.Context(), queueTestDB(t, ""))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// All subtests on one file, as the suite allows.
func TestChangeSetsConformanceSharedFile(t *testing.T) {
	db := queueTestDB(t, "")
	var once sync.Once
	var s *embedded.ChangeSets
	changesettest.Run(t, func(t *testing.T) changeset.Store {
		once.Do(func() {
			var err error
			if s, err = embedded.NewChangeSets(t.Context(), db); err != nil {
				t.Fatal(err)
			}
		})
		return s
	})
}
