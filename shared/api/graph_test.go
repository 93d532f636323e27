package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/graph"
)

func TestGraph(t *testing.T) {
	t.Parallel()
	h := newHarness(t)

	var all graph.Document
	r := h.call("GET", "/graph", "reader", nil).want(http.StatusOK)
	r.decode(&all)
	if all.Format != graph.FormatV1 || len(all.Components) != 12 || len(all.Waves) == 0 {
		t.Fatalf("GET /graph: %d components, format %s", len(all.Components), all.Format)
	}
	etag := r.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	h.call("GET", "/graph", "reader", nil, "If-None-Match", etag).want(http.StatusNotModified)
	h.call("GET", "/graph", "reader", nil, "If-None-Match", `"other"`).want(http.StatusOK)

	var prod graph.Document
	r = h.call("GET", "/graph?env=prod", "reader", nil).want(http.StatusOK)
	r.decode(&prod)
	for _, c := range prod.Components {
		if c.Env != "prod" {
			t.Errorf("env=prod lists %s", c.ID)
		}
	}
	if r.Header.Get("ETag") == etag {
		t.Error("two documents, one ETag")
	}

	// type: the components of the type and the edges between them only.
	var vpcs graph.Document
	h.call("GET", "/graph?type=vpc", "reader", nil).want(http.StatusOK).decode(&vpcs)
	if len(vpcs.Components) != 2 || len(vpcs.Edges) != 0 {
		t.Errorf("type=vpc: %d components, %d edges", len(vpcs.Components), len(vpcs.Edges))
	}

	// gzip when accepted: the same bytes.
	r = h.call("GET", "/graph?env=prod", "reader", nil, "Accept-Encoding", "gzip")
	if r.Header.Get("Content-Encoding") != "gzip" {
		t.Fatal("gzip accepted, not sent")
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !bytes.Equal(plain, h.call("GET", "/graph?env=prod", "reader", nil).body) {
		t.Error("the gzipped document differs")
	}

	p := h.call("GET", "/graph?env=staging", "reader", nil).want(http.StatusNotFound).problem()
	if !slices.Equal(p.pointers(), []string{"/query/env"}) {
		t.Errorf("unknown environment: %+v", p)
	}
}

func TestComponent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	// A runtime as the apply stage publishes it; a secret-named key in it is redacted.
	if _, err := h.params("prod").Put(ctx, paramsPut("/iac/vpc/core/runtime", `{"vpc_id":"vpc-123","private_subnet_ids":["s-1"],"db_password":"hunter2"}`)); err != nil {
		t.Fatal(err)
	}
	var v ComponentView
	h.call("GET", "/components/prod/vpc/core?deployments=5", "reader", nil).want(http.StatusOK).decode(&v)
	if v.ID != "prod/vpc/core" || v.Config == nil || v.Runtime == nil || len(v.Dependents) == 0 || len(v.Dependencies) != 0 {
		t.Fatalf("prod/vpc/core: %+v", v)
	}
	rt := v.Runtime.Value.(map[string]any)
	if rt["vpc_id"] != "vpc-123" || rt["db_password"] != Redacted {
		t.Errorf("runtime value %v", rt)
	}
	cfg := v.Config.(map[string]any)
	if cfg["cidr"] != "10.20.0.0/16" {
		t.Errorf("config %v: want prod's cidr", cfg)
	}
	found := false
	for _, d := range v.Dependents {
		if d.Component == "prod/ecs-cluster/core" && slices.Contains(d.Consumes, "vpc_id") {
			found = true
		}
	}
	if !found {
		t.Errorf("dependents %+v: want prod/ecs-cluster/core consuming vpc_id", v.Dependents)
	}
	// No runtime published: null.
	h.call("GET", "/components/prod/route53-zone/main", "reader", nil).want(http.StatusOK).decode(&v)
	if v.Runtime != nil {
		t.Errorf("route53-zone/main runtime %+v, want null", v.Runtime)
	}

	h.call("GET", "/components/prod/vpc/nope", "reader", nil).want(http.StatusNotFound).problem()
	h.call("GET", "/components/nope/vpc/core", "reader", nil).want(http.StatusNotFound).problem()
	p := h.call("GET", "/components/prod/vpc/core?deployments=1000", "reader", nil).want(http.StatusBadRequest).problem()
	if !slices.Equal(p.pointers(), []string{"/query/deployments"}) {
		t.Errorf("deployments=1000: %+v", p)
	}
}

func TestImpact(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var all, keyed graph.ImpactReport
	h.call("GET", "/impact?component=prod/vpc/core", "reader", nil).want(http.StatusOK).decode(&all)
	if len(all.Seeds) != 1 || all.Seeds[0] != "prod/vpc/core" || len(all.Affected) < 3 || all.Affected[0].ID != "prod/vpc/core" {
		t.Fatalf("impact of prod/vpc/core: %+v", all)
	}
	for _, a := range all.Affected[1:] {
		if len(a.Reason) == 0 || a.Reason[0].To != "prod/vpc/core" {
			t.Errorf("%s: reason chain %+v does not start at the seed", a.ID, a.Reason)
		}
	}
	// A key nobody consumes reaches nobody.
	h.call("GET", "/impact?component=prod/vpc/core&keys=flow_log_group", "reader", nil).want(http.StatusOK).decode(&keyed)
	if len(keyed.Affected) != 1 {
		t.Errorf("keys=flow_log_group: %d affected, want the seed only", len(keyed.Affected))
	}

	cases := []struct {
		query    string
		status   int
		pointers []string
	}{
		{"", http.StatusBadRequest, []string{"/query/component"}},
		{"?component=vpc/core", http.StatusBadRequest, []string{"/query/component"}},
		{"?component=prod/vpc/core&keys=a,,b", http.StatusBadRequest, []string{"/query/keys"}},
		{"?component=prod/vpc/nope", http.StatusNotFound, []string{"/query/component"}},
		{"?component=staging/vpc/core", http.StatusNotFound, []string{"/query/component"}},
	}
	for _, c := range cases {
		p := h.call("GET", "/impact"+c.query, "reader", nil).want(c.status).problem()
		if !slices.Equal(p.pointers(), c.pointers) {
			t.Errorf("GET /impact%s: pointers %v, want %v", c.query, p.pointers(), c.pointers)
		}
	}
}

// The head's graph says what the parameter stores hold now: a component deployed after its
// commit was first built (the build is kept per commit) is shown with its runtime present, not
// "missing" as when the build was made.
func TestGraphShowsRuntimesPublishedSinceTheBuild(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	status := func() string {
		t.Helper()
		var doc graph.Document
		h.call("GET", "/graph?env=prod", "reader", nil).want(http.StatusOK).decode(&doc)
		for _, c := range doc.Components {
			if c.ID == "prod/vpc/core" {
				return c.RuntimeStatus
			}
		}
		t.Fatal("prod/vpc/core is not in the graph")
		return ""
	}
	var created ChangeCreated
	h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(30))).want(http.StatusCreated).decode(&created)
	h.runUntilIdle()
	if got := status(); got != graph.RuntimeMissing {
		t.Fatalf("before the apply: runtime %s, want missing", got)
	}
	h.call("POST", "/changes/"+url.PathEscape(created.ChangeID)+"/approve", "approver", nil).want(http.StatusOK)
	h.runUntilIdle()
	if got := status(); got != graph.RuntimePresent {
		t.Errorf("after the apply: runtime %s, want present (published by the deployment)", got)
	}
}

// With Parameter Store one account is one environment, and every environment's runtimes are
// read from the account of the credentials: a store bound to prod (/iac/environment) holds
// prod's runtimes. GET /components/dev/... showed prod's runtime as dev's component's; it shows
// none (the graph reports the binding), and prod's component still shows its own.
func TestComponentRuntimeOfAnotherEnvironmentsAccountIsNotShown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	account := h.params("prod") // the one account, for every environment
	for name, value := range map[string]string{"/iac/environment": "prod", "/iac/vpc/core/runtime": `{"vpc_id":"vpc-prod"}`} {
		if _, err := account.Put(ctx, paramsPut(name, value)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := h.config()
	cfg.Params = func(string) (ParamReader, error) { return account, nil }
	handler, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.handler = handler
	var dev, prod ComponentView
	h.call("GET", "/components/dev/vpc/core", "reader", nil).want(http.StatusOK).decode(&dev)
	if dev.Runtime != nil {
		t.Errorf("dev/vpc/core shows the runtime of the account bound to prod: %+v", dev.Runtime)
	}
	h.call("GET", "/components/prod/vpc/core", "reader", nil).want(http.StatusOK).decode(&prod)
	if prod.Runtime == nil || prod.Runtime.Value.(map[string]any)["vpc_id"] != "vpc-prod" {
		t.Errorf("prod/vpc/core: runtime %+v, want its own", prod.Runtime)
	}
}

// A type filter naming a type no component has (a misspelling: ecs_service for ecs-service) is
// a 404 naming the types there are, on GET /graph and GET /impact: it answered an empty graph,
// and an impact of nothing, as if the change redeployed nothing of that type.
func TestTypeFilterOfAnUnknownType(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, path := range []string{"/graph?type=ecs_service", "/graph?env=prod&type=ecs_service", "/impact?component=prod/vpc/core&type=ecs_service"} {
		p := h.call("GET", path, "reader", nil).want(http.StatusNotFound).problem()
		if !slices.Equal(p.pointers(), []string{"/query/type"}) || !strings.Contains(p.Detail, `no component of type "ecs_service"`) || !strings.Contains(p.Detail, "ecs-service") {
			t.Errorf("%s: %+v", path, p)
		}
	}
	var doc graph.Document
	h.call("GET", "/graph?env=prod&type=ecs-service", "reader", nil).want(http.StatusOK).decode(&doc)
	if len(doc.Components) == 0 {
		t.Error("GET /graph?type=ecs-service: no component")
	}
	var imp graph.ImpactReport
	h.call("GET", "/impact?component=prod/vpc/core&type=ecs-service", "reader", nil).want(http.StatusOK).decode(&imp)
	if len(imp.Affected) == 0 {
		t.Error("GET /impact?type=ecs-service: nothing affected")
	}
}
