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

// A deployment reached along a second path (marked repeated, without its upstream) is printed
// as such, not followed again and not taken for a root.
func TestPrintBackwardSaysARepeatedCauseIsAbove(t *testing.T) {
	t.Parallel()
	a := &lineage.Step{Deployment: lineage.Deployment{ID: "dep-a", Component: "prod/vpc/core", Status: lineage.StatusApplied}, Causes: []lineage.CauseStep{}}
	s := &lineage.Step{Deployment: lineage.Deployment{ID: "dep-d", ChangeSetID: "cs", Component: "prod/app/api", Status: lineage.StatusApplied},
		Causes: []lineage.CauseStep{
			{Cause: message.Cause{Kind: message.CauseDeployment, ID: "dep-a", Keys: []string{"vpc_id"}}, Upstream: a},
			{Cause: message.Cause{Kind: message.CauseDeployment, ID: "dep-a", Keys: []string{"subnets"}}, Repeated: true},
		}}
	var b bytes.Buffer
	printBackward(&b, s, 0)
	if want := "dep-a  its lineage is printed above"; !strings.Contains(b.String(), want) {
		t.Errorf("printed\n%s\nwant a line with %q", b.String(), want)
	}
	if strings.Contains(b.String(), "not followed") {
		t.Errorf("a repeated cause printed as the lineage's end:\n%s", b.String())
	}
}
