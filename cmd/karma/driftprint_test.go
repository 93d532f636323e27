package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/drift"
	"github.com/usekarma/karma/shared/message"
)

// A read (karma drift --server: GET /drift, printed as a dry run) marks the drifts an earlier run
// recorded: they are printed as seen before, with the correction queued then — not as "not
// recorded"; a new drift of a dry run is.
func TestDriftPrintSaysWhatEarlierRunsRecorded(t *testing.T) {
	t.Parallel()
	rep := &drift.Report{Commit: "9f3c2a71e4b05d8c", Envs: []drift.EnvReport{{Env: "prod", Findings: []drift.Finding{
		{Env: "prod", DriftDetected: message.DriftDetected{DriftID: "drift-0000000000000001", Component: "prod/vpc/core", Kind: message.DriftConfig,
			Reason: message.DriftDiffers, Action: message.DriftCorrect, ChangeSetID: "change-1"},
			Recorded: &drift.Recorded{MessageID: "m-1", Action: message.DriftCorrect, ChangeSetID: "change-1"}},
		{Env: "prod", DriftDetected: message.DriftDetected{DriftID: "drift-0000000000000002", Component: "prod/app/api", Kind: message.DriftRuntime,
			Reason: message.DriftDiffers}},
	}}}}
	var b bytes.Buffer
	printDrift(&b, rep, true)
	out := b.String()
	for _, want := range []string{
		"drift-0000000000000001: seen before; its corrective change change-1 was queued then",
		"drift-0000000000000002: dry run, not recorded",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "drift-0000000000000001: dry run") {
		t.Errorf("a drift an earlier run recorded is printed as not recorded:\n%s", out)
	}
}
