package apply_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	wt "github.com/usekarma/karma/workers/internal/workertest"
)

// Terraform outputs Parameter Store cannot hold fail the deployment with the reason, on the first
// delivery and on every redelivery; the apply is never retried in a loop. With the stores' writes
// atomic (the embedded file), the refused publication takes back the outcome recorded with it,
// which is then recorded on its own: the redelivery finds it and does not run Terraform again.
func TestApplyRuntimeTooLargeFailsTheDeployment(t *testing.T) {
	t.Parallel()
	for _, atomically := range []bool{false, true} {
		t.Run(fmt.Sprintf("atomic=%v", atomically), func(t *testing.T) {
			t.Parallel()
			s := newStage(t, setup{approved: true})
			if atomically {
				s.w.Atomic = s.db.Atomically
			}
			// terraform.Noop outputs every top-level config key as cfg_<key>: a 9 KB config value
			// makes a runtime over the 8 KB limit.
			big := fmt.Sprintf(`{"blob":%q}`, strings.Repeat("b", params.MaxValueBytes+1))
			if _, err := s.cs.Update(context.Background(), s.csID, func(cs *changeset.ChangeSet) error {
				cs.Nodes["prod/vpc/core"].Config = json.RawMessage(big)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			in := s.planned(t, 90, "prod/vpc/core", 0, big)
			for attempt := 1; attempt <= 2; attempt++ {
				out := s.handle(t, in) // fails the test unless acknowledged
				if len(out) != 1 || out[0].Type != message.TypeDeploymentFailed {
					t.Fatalf("attempt %d: got %d messages, want one deployment.failed", attempt, len(out))
				}
				p := wt.PayloadOf[message.DeploymentFailed](t, out[0])
				if p.Stage != "apply" || !strings.Contains(p.Error, "/iac/vpc/core/runtime") || !strings.Contains(p.Error, fmt.Sprint(params.MaxValueBytes)) {
					t.Errorf("attempt %d: failed %+v, want the runtime parameter and the %d-byte limit named", attempt, p, params.MaxValueBytes)
				}
			}
			if got := s.runner.applies.Load(); got != 1 {
				t.Errorf("terraform applied %d times, want 1 (the redelivery re-announces the failure)", got)
			}
			if _, ok := s.param(t, "/iac/vpc/core/runtime"); ok {
				t.Error("a runtime was published")
			}
			if n := s.node(t, "prod/vpc/core"); n.Outcome == nil || n.Outcome.RuntimeVersion != 0 {
				t.Errorf("outcome %+v; want Terraform's outcome recorded, unpublished", n.Outcome)
			}
		})
	}
}
