package rollback

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/model"
)

// history: prod/vpc/core applied by change sets a (version 1) and b (version 2), failed in c,
// destroyed in d; e is still running.
func history() []*changeset.ChangeSet {
	node := func(cs, state string, version int64) *changeset.Node {
		n := &changeset.Node{Component: "prod/vpc/core", State: state, DeploymentID: changeset.DeploymentID(cs, "prod/vpc/core"),
			Config: json.RawMessage(`{"az_count":` + string(rune('0'+version)) + `}`), ConfigHash: "h" + cs}
		if state == changeset.Applied {
			n.Outcome = &changeset.Outcome{RuntimeVersion: version, Config: n.Config}
		}
		return n
	}
	mk := func(id, commit string, n *changeset.Node) *changeset.ChangeSet {
		return &changeset.ChangeSet{ID: id, Env: "prod", Commit: commit, Nodes: map[string]*changeset.Node{n.Component: n}}
	}
	destroyed := node("d", changeset.Applied, 3)
	destroyed.Destroy = true
	return []*changeset.ChangeSet{
		mk("e", "e0", node("e", changeset.Pending, 0)),
		mk("d", "d0", destroyed),
		mk("c", "c0", node("c", changeset.Failed, 0)),
		mk("b", "b0", node("b", changeset.Applied, 2)),
		mk("a", "a0", node("a", changeset.Applied, 1)),
	}
}

func dep(cs string) string { return changeset.DeploymentID(cs, "prod/vpc/core") }

func TestFind(t *testing.T) {
	t.Parallel()
	all := history()
	all = all[2:] // without d and e: b runs now
	target, replaces, err := Find(all, dep("a"))
	if err != nil || target.ChangeSet.ID != "a" || target.Commit() != "a0" || replaces != dep("b") || string(target.Config()) != `{"az_count":1}` {
		t.Fatalf("target %+v, replaces %s, %v", target, replaces, err)
	}
	if m := target.Message(replaces); m.DeploymentID != dep("a") || m.ChangeSetID != "a" || m.Commit != "a0" || m.ConfigHash != "ha" || m.Replaces != dep("b") {
		t.Errorf("message %+v", m)
	}
	for _, c := range []struct {
		name, id, want string
		all            []*changeset.ChangeSet
	}{
		{"never applied", dep("c"), "it never applied (it is failed", all},
		{"a destroy", dep("d"), "it destroyed the component", history()},
		{"what runs now", dep("b"), "it is the deployment the component runs now", all},
	} {
		_, _, err := Find(c.all, c.id)
		var refused *RefusedError
		if !errors.As(err, &refused) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.id) {
			t.Errorf("%s: %v, want a refusal saying %q", c.name, err, c.want)
		}
	}
	if _, _, err := Find(all, "dep-0000000000000000"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown: %v", err)
	}
}

// The deployment a component runs now is the one applied last: of the latest change set that
// applied it, whatever runtime version it published. Runtime versions start again at 1 when the
// component's /runtime was deleted: compared by version, a deployment from before the deletion
// was taken for what runs now — rolling back to it was refused ("it is the deployment the
// component runs now"), and a rollback to another named it as what it rolled back from.
func TestCurrentIsAppliedLastWhenTheRuntimeWasCreatedAgain(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	applied := func(id string, version int64, at time.Duration) *changeset.ChangeSet {
		n := &changeset.Node{Component: "prod/vpc/core", State: changeset.Applied, DeploymentID: dep(id),
			Config: json.RawMessage(`{"az_count":` + string(rune('0'+version)) + `}`), ConfigHash: "h" + id}
		n.Outcome = &changeset.Outcome{RuntimeVersion: version, Config: n.Config}
		return &changeset.ChangeSet{ID: id, Env: "prod", Commit: id + "0", CreatedAt: t0.Add(at), Nodes: map[string]*changeset.Node{n.Component: n}}
	}
	// a and b published versions 1 and 2; /runtime was deleted; c published version 1 again.
	a, b, c := applied("a", 1, 0), applied("b", 2, time.Hour), applied("c", 1, 2*time.Hour)
	for name, all := range map[string][]*changeset.ChangeSet{
		"newest first": {c, b, a},
		"in any order": {a, c, b},
	} {
		if got := Current(all, "prod/vpc/core"); got != dep("c") {
			t.Errorf("%s: current %s, want %s (c, applied last)", name, got, dep("c"))
		}
		target, replaces, err := Find(all, dep("b"))
		if err != nil || target.ChangeSet.ID != "b" || replaces != dep("c") {
			t.Errorf("%s: rolling back to b: replaces %s, %v; want it, from c", name, replaces, err)
		}
		if _, _, err := Find(all, dep("c")); err == nil || !strings.Contains(err.Error(), "runs now") {
			t.Errorf("%s: rolling back to c, which runs now: %v", name, err)
		}
	}
}

func TestPendingChangeSetsShareAComponent(t *testing.T) {
	t.Parallel()
	got := Pending(history(), "prod", []string{"prod/vpc/core", "prod/ecs-cluster/core"})
	if len(got) != 1 || got[0].ID != "e" {
		t.Errorf("pending %v, want e only", got)
	}
	if got := Pending(history(), "prod", []string{"prod/ecs-cluster/core"}); len(got) != 0 {
		t.Errorf("pending %v for a component nobody deploys", got)
	}
}

func build(t *testing.T, files map[string]string) *model.Result {
	t.Helper()
	fsys := fstest.MapFS{}
	for k, v := range files {
		fsys[k] = &fstest.MapFile{Data: []byte(v)}
	}
	res, err := model.BuildFS(context.Background(), fsys, "repo", model.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Every reason is reported at once.
func TestCheckReportsEveryReason(t *testing.T) {
	t.Parallel()
	at := build(t, map[string]string{
		"iac/prod/app/web/config.json":  `{"db_nickname": "main", "size": 1}`,
		"iac/prod/db/main/config.json":  `{}`,
		"iac/prod/vpc/core/config.json": `{}`,
	})
	head := build(t, map[string]string{
		"iac/prod/app/web/config.json":      `{"size": 2}`,
		"components/app/config.schema.json": `{"type": "object", "properties": {"size": {"minimum": 2}}, "additionalProperties": false}`,
	})
	n := &changeset.Node{Component: "prod/app/web", State: changeset.Applied, DeploymentID: "dep-1", Config: json.RawMessage(`{"db_nickname":"main","size":1}`)}
	target := Target{ChangeSet: &changeset.ChangeSet{ID: "old", Env: "prod", Commit: "1111111111111111"}, Node: n}
	err := Check(target, head, at, "2222222222222222")
	var refused *RefusedError
	if !errors.As(err, &refused) || len(refused.Reasons) != 2 {
		t.Fatalf("%v: want two reasons", err)
	}
	if !strings.Contains(refused.Reasons[0], "references prod/db/main, which is no longer defined at the head commit 222222222222") {
		t.Errorf("first reason %q", refused.Reasons[0])
	}
	if !strings.Contains(refused.Reasons[1], "no longer validates against the schema of app") || !strings.Contains(refused.Reasons[1], "/size") {
		t.Errorf("second reason %q", refused.Reasons[1])
	}
	if err := Check(target, at, at, "1111111111111111"); err != nil {
		t.Errorf("at its own commit it applies: %v", err)
	}
}

// A dependent that reads, at the head, a runtime key the component publishes now and the target
// deployment never published could not be deployed after the rollback (its reference would
// read nothing): the rollback is refused before anything runs, naming the dependent and the
// keys, rather than applying the root and failing the dependents half-way. A key missing now too
// is not the rollback's doing.
func TestUnpublishedKeysADependentReads(t *testing.T) {
	t.Parallel()
	head := build(t, map[string]string{
		"iac/prod/vpc/core/config.json": `{}`,
		"iac/prod/app/web/config.json":  `{"subnets": "${vpc/core.runtime.private_subnet_ids}", "vpc": "${vpc/core.runtime.vpc_id}", "z": "${vpc/core.runtime.zone}"}`,
	})
	target := func(runtime string) Target {
		n := &changeset.Node{Component: "prod/vpc/core", State: changeset.Applied, DeploymentID: "dep-1", Config: json.RawMessage(`{}`),
			Outcome: &changeset.Outcome{RuntimeVersion: 1, Runtime: json.RawMessage(runtime)}}
		return Target{ChangeSet: &changeset.ChangeSet{ID: "old", Env: "prod", Commit: "1111111111111111"}, Node: n}
	}
	now := json.RawMessage(`{"vpc_id": "vpc-2", "private_subnet_ids": ["s-2"]}`)
	lost := Unpublished(target(`{"vpc_id": "vpc-1"}`), now, head, "2222222222222222")
	if len(lost) != 1 || !strings.Contains(lost[0], "prod/app/web reads private_subnet_ids") || strings.Contains(lost[0], "vpc_id") || strings.Contains(lost[0], "zone") {
		t.Fatalf("%q: want one reason naming prod/app/web and private_subnet_ids (not vpc_id, which it published, nor zone, missing now too)", lost)
	}
	if lost := Unpublished(target(`{"vpc_id": "vpc-1", "private_subnet_ids": ["s-1"]}`), now, head, "2222222222222222"); len(lost) != 0 {
		t.Errorf("a target that published every key read: %q", lost)
	}
	if lost := Unpublished(target(`{"vpc_id": "vpc-1"}`), nil, head, "2222222222222222"); len(lost) != 0 {
		t.Errorf("without the current runtime nothing is judged: %q", lost)
	}
}

// repo is a Repository whose every commit is one graph.
type repo struct{ res *model.Result }

func (r repo) Head(context.Context) (string, error) { return "2222222222222222", nil }
func (r repo) Build(context.Context, string, string, map[string][]byte) (*model.Result, error) {
	return r.res, nil
}

// karma rollback and POST /deployments/{id}/rollback refuse it before queueing anything.
func TestPrepareRefusesARollbackThatLosesAKeyADependentReads(t *testing.T) {
	t.Parallel()
	head := build(t, map[string]string{
		"iac/prod/vpc/core/config.json": `{}`,
		"iac/prod/app/web/config.json":  `{"subnets": "${vpc/core.runtime.private_subnet_ids}"}`,
	})
	all := history()[3:] // a, then b, which runs now
	all[1].Nodes["prod/vpc/core"].Outcome.Runtime = json.RawMessage(`{"vpc_id": "vpc-1"}`)
	all[0].Nodes["prod/vpc/core"].Outcome.Runtime = json.RawMessage(`{"vpc_id": "vpc-2", "private_subnet_ids": ["s-2"]}`)
	_, err := Prepare(context.Background(), repo{head}, all, dep("a"))
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "prod/app/web reads private_subnet_ids") {
		t.Fatalf("%v: want the rollback to a refused, naming prod/app/web and private_subnet_ids", err)
	}
	all[1].Nodes["prod/vpc/core"].Outcome.Runtime = json.RawMessage(`{"vpc_id": "vpc-1", "private_subnet_ids": ["s-1"]}`)
	if p, err := Prepare(context.Background(), repo{head}, all, dep("a")); err != nil || p.Replaces != dep("b") {
		t.Errorf("a target that published the key: %+v, %v", p, err)
	}
}
