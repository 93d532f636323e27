package main

import (
	"strings"
	"testing"
)

// An id Karma does not know exits 2 naming it — locally as through the API (a 404), as
// docs/api.md says — for lineage, apply (approve) and reject, as it does for retry and rollback.
func TestUnknownIDExitsTwo(t *testing.T) {
	repo, state, db := demoRepoDB(t)
	sv := startAPIOver(t, db, 1000)
	g := &globals{}
	const dep = "dep-0123456789abcdef"
	for _, tc := range []struct {
		args []string
		name string // what the error names
		both bool   // also through --server
	}{
		{[]string{"lineage", dep}, dep, true},
		{[]string{"lineage", "prod/vpc/nosuch"}, "prod/vpc/nosuch", false},
		{[]string{"reject", "chg-nosuch", "--reason", "no"}, "chg-nosuch", true},
		{[]string{"apply", "chg-nosuch"}, "chg-nosuch", true},
		{[]string{"retry", dep}, dep, false},
	} {
		code, out, errOut := karmaWith(t, g, append(tc.args, "--repo", repo, "--state-dir", state)...)
		if code != 2 || !strings.Contains(errOut, tc.name) {
			t.Errorf("%v: exit %d %s%s; want exit 2 naming %s", tc.args, code, out, errOut, tc.name)
		}
		if !tc.both {
			continue
		}
		code, out, errOut = karmaWith(t, g, append(tc.args, "--server", sv.url)...)
		if code != 2 || !strings.Contains(errOut, tc.name) {
			t.Errorf("%v --server: exit %d %s%s; want exit 2 naming %s", tc.args, code, out, errOut, tc.name)
		}
	}
}
