package main

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

// failedSet is a done change set of prod made at minute m: a (root, failed) -> b -> c, both
// blocked; d (root, failed too) -> e, blocked; f applied.
func failedSet(id string, m int, auto bool) *changeset.ChangeSet {
	node := func(comp, state string, deps ...string) *changeset.Node {
		return &changeset.Node{Component: comp, State: state, DeploymentID: changeset.DeploymentID(id, comp), Dependents: deps}
	}
	cs := &changeset.ChangeSet{ID: id, Env: "prod", CorrelationID: strings.TrimSuffix(id, "/prod"), Commit: "c0ffee" + id, AutoApprove: auto,
		Approved: true, ApprovedBy: "ada", CreatedAt: time.Date(2026, 3, 1, 9, m, 0, 0, time.UTC), Nodes: map[string]*changeset.Node{
			"prod/t/a": node("prod/t/a", changeset.Failed, "prod/t/b"),
			"prod/t/b": node("prod/t/b", changeset.Blocked, "prod/t/c"),
			"prod/t/c": node("prod/t/c", changeset.Blocked),
			"prod/t/d": node("prod/t/d", changeset.Failed, "prod/t/e"),
			"prod/t/e": node("prod/t/e", changeset.Blocked),
			"prod/t/f": node("prod/t/f", changeset.Applied),
		}}
	for _, n := range cs.Nodes {
		if n.State == changeset.Blocked {
			n.Reason, n.Detail, n.Announced = changeset.ReasonUpstreamFailed, "upstream did not deploy", true
		}
		if n.State == changeset.Failed {
			n.Detail = "apply: terraform apply " + n.Component + ": exit status 1\nError: quota exceeded"
		}
	}
	return cs
}

func TestRetryTargets(t *testing.T) {
	cs := failedSet("one/prod", 1, true)
	depA, depF := cs.Nodes["prod/t/a"].DeploymentID, cs.Nodes["prod/t/f"].DeploymentID
	if got, err := retryTargets([]*changeset.ChangeSet{cs}, depA); err != nil || len(got) != 1 || got[0].component != "prod/t/a" || got[0].failed != depA {
		t.Errorf("a failed deployment: %+v, %v", got, err)
	}
	got, err := retryTargets([]*changeset.ChangeSet{cs}, "one") // the root id of the change
	var comps []string
	for _, tg := range got {
		comps = append(comps, tg.component)
	}
	if err != nil || !slices.Equal(comps, []string{"prod/t/a", "prod/t/d"}) {
		t.Errorf("a change: %v, %v; want both failed deployments", comps, err)
	}

	superseded := failedSet("old/prod", 1, true)
	superseded.SupersededBy = "new/prod"
	laterApplied, laterFailed, laterBusy, laterSkipped := failedSet("b/prod", 2, true), failedSet("c/prod", 2, true), failedSet("d/prod", 2, true), failedSet("e/prod", 2, true)
	laterApplied.Nodes["prod/t/a"].State = changeset.Applied
	laterBusy.Nodes["prod/t/a"].State = changeset.Planned
	laterSkipped.Nodes["prod/t/a"].State = changeset.Skipped
	otherEnv := failedSet("f/prod", 2, true)
	otherEnv.Env = "dev"
	done := failedSet("g/prod", 1, true)
	for _, n := range done.Nodes {
		n.State = changeset.Applied
	}
	retried := failedSet("h/prod", 1, true)
	retried.Nodes["prod/t/a"].Causes = []message.Cause{{Kind: message.CauseRetry, ID: "dep-0123456789abcdef"}}
	retried.Nodes["prod/t/a"].DeploymentID = retryDeploymentID("dep-0123456789abcdef")

	refused := []struct {
		name string
		all  []*changeset.ChangeSet
		id   string
		want string
	}{
		{"unknown deployment", []*changeset.ChangeSet{cs}, "dep-ffffffffffffffff", "deployment dep-ffffffffffffffff: unknown id"},
		{"unknown change", []*changeset.ChangeSet{cs}, "nope", "change nope: unknown id"},
		{"not failed", []*changeset.ChangeSet{cs}, depF, "deployment " + depF + " (prod/t/f, change one/prod) did not fail: it is applied"},
		{"run again already", []*changeset.ChangeSet{retried}, "dep-0123456789abcdef", "was run again already, as " + retryDeploymentID("dep-0123456789abcdef") + ", which is failed (apply: terraform apply prod/t/a: exit status 1): karma retry " + retryDeploymentID("dep-0123456789abcdef")},
		{"nothing failed", []*changeset.ChangeSet{done}, "g/prod", "change g/prod has no failed deployment (g/prod: 6 applied"},
		{"superseded", []*changeset.ChangeSet{superseded}, superseded.Nodes["prod/t/a"].DeploymentID, "change old/prod was superseded by new/prod"},
		{"deployed later", []*changeset.ChangeSet{cs, laterApplied}, depA, "the later change b/prod (commit c0ffeeb/prod) deployed prod/t/a since (" + laterApplied.Nodes["prod/t/a"].DeploymentID + "): running " + depA + " again would deploy commit c0ffeeone/pr over it"},
		{"failed later too", []*changeset.ChangeSet{cs, laterFailed}, depA, "failed prod/t/a too (" + laterFailed.Nodes["prod/t/a"].DeploymentID + "): run that one again instead: karma retry " + laterFailed.Nodes["prod/t/a"].DeploymentID},
		{"being deployed later", []*changeset.ChangeSet{cs, laterBusy}, depA, "is deploying prod/t/a (" + laterBusy.Nodes["prod/t/a"].DeploymentID + ", planned): let it finish"},
	}
	for _, r := range refused {
		if _, err := retryTargets(r.all, r.id); err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s: %v, want an error containing %q", r.name, err, r.want)
		}
	}
	if _, err := retryTargets([]*changeset.ChangeSet{cs}, "dep-ffffffffffffffff"); !errors.Is(err, errUnknownID) {
		t.Errorf("unknown id: %v, want errUnknownID", err)
	}
	// Later change sets that did not deploy the component, or of another environment, or earlier:
	// no obstacle.
	for _, other := range []*changeset.ChangeSet{laterSkipped, otherEnv, failedSet("early/prod", 0, true)} {
		if _, err := retryTargets([]*changeset.ChangeSet{cs, other}, depA); err != nil {
			t.Errorf("with %s: %v", other.ID, err)
		}
	}
}

func TestReopen(t *testing.T) {
	for _, auto := range []bool{true, false} {
		cs := failedSet("one/prod", 1, auto)
		failedA := cs.Nodes["prod/t/a"].DeploymentID
		retried, reopened, err := reopen(cs, []retryTarget{{cs: cs, component: "prod/t/a", failed: failedA}})
		if err != nil {
			t.Fatal(err)
		}
		a := cs.Nodes["prod/t/a"]
		if len(retried) != 1 || retried[0] != a || a.State != changeset.Scheduled || a.DeploymentID != retryDeploymentID(failedA) || a.DeploymentID == failedA ||
			len(a.Causes) != 1 || a.Causes[0].Kind != message.CauseRetry || a.Causes[0].ID != failedA || a.Detail != "" || !a.Announced {
			t.Errorf("retried node %+v", a)
		}
		if !slices.Equal(reopened, []string{"prod/t/b", "prod/t/c"}) {
			t.Errorf("reopened %v, want what a's failure blocked", reopened)
		}
		for _, id := range reopened {
			if n := cs.Nodes[id]; n.State != changeset.Pending || n.Reason != "" || n.Announced {
				t.Errorf("%s: %+v, want pending, to be decided and announced again", id, n)
			}
		}
		if e := cs.Nodes["prod/t/e"]; e.State != changeset.Blocked || cs.Nodes["prod/t/d"].State != changeset.Failed {
			t.Error("what the other failure blocked changed")
		}
		if cs.Approved != auto {
			t.Errorf("auto-approve %v: approved %v after the retry; a reviewed change needs a new review", auto, cs.Approved)
		}
		// The same retry again (the change set changed meanwhile): refused, nothing changed.
		if _, _, err := reopen(cs, []retryTarget{{cs: cs, component: "prod/t/a", failed: failedA}}); err == nil {
			t.Error("a retry of a node no longer failed was accepted")
		}
	}
}

// A retry deploys what the failed deployment was to deploy: every field of the node that says
// what (config, hash, the commit whose module a rollback's root deploys, its place in the
// graph) survives reopen; the fields of the failed run are reset. A field added to Node must be
// put in one list or the other here.
func TestReopenKeepsWhatTheNodeDeploys(t *testing.T) {
	kept := []string{"Component", "Wave", "Upstreams", "Dependents", "Root", "Destroy", "Config", "ConfigHash", "Commit", "GitConfigHash"}
	reset := map[string]any{
		"State": changeset.Scheduled, "DeploymentID": retryDeploymentID("dep-failed"), "Causes": []message.Cause{{Kind: message.CauseRetry, ID: "dep-failed"}},
		"ChangedKeys": []string(nil), "Reason": "", "Detail": "", "Announced": true,
		"Plan": (*message.DeploymentPlanned)(nil), "PlanMessageID": "", "Outcome": (*changeset.Outcome)(nil),
	}
	failed := changeset.Node{Component: "prod/t/a", Wave: 2, Upstreams: []changeset.Upstream{{Component: "prod/t/z"}}, Dependents: []string{"prod/t/b"},
		Root: true, Destroy: true, Config: json.RawMessage(`{"az_count":3}`), ConfigHash: "sha256:cfg", Commit: "0ld0c0mm1t",
		GitConfigHash: "sha256:head", State: changeset.Failed, DeploymentID: "dep-failed", Causes: []message.Cause{{Kind: message.CauseRollback, ID: "dep-target"}},
		ChangedKeys: []string{"vpc_id"}, Reason: "r", Detail: "apply: exit status 1", Announced: false,
		Plan: &message.DeploymentPlanned{}, PlanMessageID: "msg-plan", Outcome: &changeset.Outcome{RuntimeHash: "h"}}
	typ := reflect.TypeOf(failed)
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if _, r := reset[name]; !slices.Contains(kept, name) && !r {
			t.Errorf("Node.%s is neither kept nor reset by reopen: decide which, here and in reopen", name)
		}
		if reflect.ValueOf(failed).Field(i).IsZero() && (slices.Contains(kept, name) || reflect.ValueOf(reset[name]).IsZero()) {
			t.Errorf("Node.%s is zero in the failed node: give it a value, so that the test sees it kept or reset", name)
		}
	}
	cs := &changeset.ChangeSet{ID: "one/prod", Env: "prod", Commit: "head", Nodes: map[string]*changeset.Node{"prod/t/a": &failed, "prod/t/b": {Component: "prod/t/b", State: changeset.Blocked}},
		Approved: true, ApprovedBy: "ada, bob", Approvals: []changeset.Approver{{By: "ada"}, {By: "bob"}}}
	before := failed
	if _, _, err := reopen(cs, []retryTarget{{cs: cs, component: "prod/t/a", failed: "dep-failed"}}); err != nil {
		t.Fatal(err)
	}
	got := reflect.ValueOf(*cs.Nodes["prod/t/a"])
	for _, name := range kept {
		if !reflect.DeepEqual(got.FieldByName(name).Interface(), reflect.ValueOf(before).FieldByName(name).Interface()) {
			t.Errorf("Node.%s = %v after reopen, want %v kept", name, got.FieldByName(name), reflect.ValueOf(before).FieldByName(name))
		}
	}
	for name, want := range reset {
		if !reflect.DeepEqual(got.FieldByName(name).Interface(), want) {
			t.Errorf("Node.%s = %#v after reopen, want %#v", name, got.FieldByName(name).Interface(), want)
		}
	}
	if mc := cs.ModuleCommit("prod/t/a"); mc != "0ld0c0mm1t" {
		t.Errorf("the retried rollback deploys the module of %q, want the commit it returns to", mc)
	}
	// The retry's plans are new: the approvals of the failed ones do not approve them.
	if cs.Approved || cs.ApprovedBy != "" || len(cs.Approvals) != 0 {
		t.Errorf("after reopen: approved %v by %q, approvals %+v; want none", cs.Approved, cs.ApprovedBy, cs.Approvals)
	}
}
