package besidetest_test

import (
	"testing"

	"github.com/usekarma/karma/shared/besidetest"
)

// TestDirSkipsWhenMissing: a directory absent beside the checkout skips the test that asked.
func TestDirSkipsWhenMissing(t *testing.T) {
	var skipped bool
	t.Run("missing", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		besidetest.Dir(t, "no such directory")
		t.Error("Dir returned for a missing directory")
	})
	if !skipped {
		t.Error("the subtest was not skipped")
	}
}
