package audit_test

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/usekarma/karma/shared/audit"
)

func TestSpreadChain(t *testing.T) {
	name := regexp.MustCompile(`^security/(0[0-9]|1[0-5])$`)
	used := map[string]int{}
	for i := range 1600 {
		id := fmt.Sprintf("0190c3a2-7b7e-7000-8000-%012d", i)
		c := audit.SpreadChain("security", id)
		if !name.MatchString(c) || c != audit.SpreadChain("security", id) {
			t.Fatalf("SpreadChain(security, %s) = %q (again: %q)", id, c, audit.SpreadChain("security", id))
		}
		used[c]++
	}
	for c, n := range used {
		if n < 50 { // 100 each on average
			t.Errorf("%s got %d of 1,600 entries: not spread", c, n)
		}
	}
	if len(used) != audit.SpreadChains {
		t.Errorf("%d chains used, want %d", len(used), audit.SpreadChains)
	}
}
