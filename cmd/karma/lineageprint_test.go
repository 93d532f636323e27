package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
)

// A lineage that Backward did not follow to its end (lineage.MaxDepth: a cause marked
// truncated, without its upstream) is printed with where it stops and how to go on, for every
// kind of deployment cause — not a crash on the missing upstream.
func TestPrintBackwardSaysWhereTheLineageStops(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{message.CauseDeployment, message.CauseRetry, message.CauseRollback} {
		s := &lineage.Step{Deployment: lineage.Deployment{ID: "dep-2", ChangeSetID: "cs-2", Component: "dev/app/api", Status: lineage.StatusApplied},
			Causes: []lineage.CauseStep{{Cause: message.Cause{Kind: kind, ID: "dep-1", Keys: []string{"url"}}, Truncated: true}}}
		var b bytes.Buffer
		printBackward(&b, s, 0)
		if want := "dep-1  not followed: the lineage stops 100 deployments deep (karma lineage dep-1 goes on from it)"; !strings.Contains(b.String(), want) {
			t.Errorf("%s cause printed as\n%s\nwant a line with %q", kind, b.String(), want)
		}
	}
}
