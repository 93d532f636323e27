package api

import (
	"net/http"
	"slices"
	"testing"

	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/pipeline"
)

// POST /impact checks a proposal as a change request would and predicts its blast radius:
// more availability zones change the subnets, which the service and the functions consume and
// the cluster does not; nothing is committed or queued. An invalid proposal is refused with
// the same pointers as POST /request-change.
func TestProposalImpact(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	head := gittest.Git(t, h.origin.Bare, "rev-parse", "main")
	more := vpcChange(90)
	more["az_count"] = 4
	var got ProposalImpact
	h.call("POST", "/impact", "reader", map[string]any{"component": "prod/vpc/core", "proposed_change": more}).want(http.StatusOK).decode(&got)
	if got.Component != "prod/vpc/core" || got.Base != head || got.File != "iac/prod/vpc/core/config.json" {
		t.Errorf("answer %+v", got)
	}
	if !slices.Equal(got.ChangedConfig, []string{"/az_count"}) || !slices.Equal(got.ChangedKeys, []string{"private_subnet_ids"}) {
		t.Errorf("changed config %v, keys %v", got.ChangedConfig, got.ChangedKeys)
	}
	var redeploy []string
	for _, a := range got.Redeploy.Affected {
		redeploy = append(redeploy, a.ID)
	}
	if !slices.Contains(redeploy, "prod/ecs-service/api") || !slices.Contains(redeploy, "prod/lambda/handlers") || slices.Contains(redeploy, "prod/ecs-cluster/core") {
		t.Errorf("would redeploy %v", redeploy)
	}
	if len(got.Skipped) != 1 || got.Skipped[0].ID != "prod/ecs-cluster/core" || got.Skipped[0].Reason != configrepo.SkipNoConsumedKey || got.Skipped[0].Wave != 1 {
		t.Errorf("skipped %+v", got.Skipped)
	}

	bad := vpcChange(90)
	bad["az_count"], bad["cidr"] = 9, "10.20.0.0/8"
	p := h.call("POST", "/impact", "reader", map[string]any{"component": "prod/vpc/core", "proposed_change": bad}).want(http.StatusUnprocessableEntity).problem()
	ptrs := p.pointers()
	slices.Sort(ptrs)
	if !slices.Equal(ptrs, []string{"/proposed_change/az_count", "/proposed_change/cidr"}) {
		t.Errorf("schema errors: %v %s", ptrs, p.Detail)
	}
	p = h.call("POST", "/impact", "reader", map[string]any{"component": "prod/vpc/core", "proposed_change": vpcChange(90)}).want(http.StatusUnprocessableEntity).problem()
	if !slices.Equal(p.pointers(), []string{"/proposed_change"}) {
		t.Errorf("unchanged: %v", p.pointers())
	}
	h.call("POST", "/impact", "reader", map[string]any{"component": "prod/vpc/core"}).want(http.StatusUnprocessableEntity)

	if now := gittest.Git(t, h.origin.Bare, "rev-parse", "main"); now != head {
		t.Errorf("a dry run committed %s", now)
	}
	if n, _ := h.q.Depth(t.Context(), pipeline.StageResolve); n != 0 {
		t.Errorf("a dry run queued %d change(s)", n)
	}
}

// GET /me is the caller and its scopes.
func TestMe(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var c Caller
	h.call("GET", "/me", "approver", nil).want(http.StatusOK).decode(&c)
	if c.Name != "approver" || c.Kind != "api" || !slices.Equal(c.Scopes, []Scope{ScopeRead, ScopeApprove}) {
		t.Errorf("GET /me as approver: %+v", c)
	}
}

// GET /components shows the environment file a proposal replaces, secrets redacted.
func TestComponentSource(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var v ComponentView
	h.call("GET", "/components/prod/vpc/core", "reader", nil).want(http.StatusOK).decode(&v)
	if v.Source == nil || v.Source.Path != "iac/prod/vpc/core/config.json" || v.Source.Redacted {
		t.Fatalf("source %+v", v.Source)
	}
	if m, ok := v.Source.Content.(map[string]any); !ok || m["az_count"] != float64(3) || m["single_nat_gateway"] != nil {
		t.Errorf("content %+v: want the environment file as committed", v.Source.Content)
	}
}
