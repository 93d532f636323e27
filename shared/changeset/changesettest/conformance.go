// Package changesettest is the conformance suite every changeset.Store passes: the embedded
// SQLite store and the DynamoDB store (against DynamoDB Local or a real table).
//
// Contract of Run:
//   - newStore is called once per subtest (the subtests run in parallel) and may return the same
//     store every time: every subtest uses change set ids carrying its own random prefix, and
//     List is checked only on those ids, so a long-lived table never collides with a rerun.
//     Nothing is cleaned up.
//   - Create is idempotent on the id: a second Create of the same id returns false and leaves
//     the first document as it was.
//   - Get and Update of an unknown id fail with an error matching changeset.ErrNotFound;
//     Update then does not call fn.
//   - Update is an atomic read-modify-write: concurrent Updates of one change set all land
//     (none is lost), whether the store serialises them (a transaction) or retries them (a
//     conditional write; fn may then run more than once, always on fresh state). When fn
//     fails, its error is returned (errors.Is) and nothing is stored.
//   - An Update whose fn changes nothing returns the change set as stored (a store may then
//     write nothing).
//   - changeset.Finished answers which of given change sets are done or unknown, whether the
//     store answers it itself (changeset.FinishedLister) or by reading each.
//   - List returns change sets newest first (by CreatedAt); changeset.EachCommit gives the
//     commits of an environment's change sets in that order, however many pages that takes.
//   - changeset.LastApplied finds a component's node in the environment's latest change set that
//     applied it (its outcome recorded; of equal creation times the first List gives), the same
//     whether the store answers it itself (changeset.AppliedReader) or from List, whatever the
//     order the outcomes were recorded in (an earlier change set recording its outcome after a
//     later one does not take its place) and after an outcome is taken away again (a failed
//     deployment retried). RunUpgrade: the same of change sets a store wrote before it kept
//     any record of the deployments applied last.
//   - changeset.Unfinished lists an environment's change sets that are not done and share a
//     component with those asked (all of them when none are given), newest first (of equal
//     times the smaller id), each with its creation time, what it is queued behind and which of
//     the components asked it has, the same whether the store answers it itself
//     (changeset.UnfinishedLister) or from List: a change set drops out when it is done, comes
//     back when a node of it is started again, and what it is queued behind follows its
//     updates. The change sets with promotion work (changeset.PromotionWaiting: a promotion
//     whose soak started, not published yet; a held try neither tried again nor rejected) are
//     the same whether the store lists them itself (changeset.PromotionLister) or from List.
//     So are the change sets not done, of every environment (changeset.UnfinishedSetLister).
//     RunListingsUpgrade: all three of change sets a store wrote before it kept any record of
//     them.
//   - changeset.CreateAfterLook creates a change set ordered by a look at the unfinished change
//     sets that found some (their ids), idempotent on the id as Create; a store that is a
//     changeset.LookedCreator (its look and create are not one transaction) refuses it, writing
//     nothing, with an error matching changeset.ErrLookedTooEarly, when a change set of its
//     environment sharing a component with it, unfinished, was created since the look (not among
//     those found), and only then: not for one of another environment, or sharing nothing.
//   - A change set of a thousand components round-trips (the DynamoDB item limit is 400 KB).
//   - Times are whole milliseconds in UTC, so a backend storing them as JSON round-trips them.
package changesettest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/governance"
	"github.com/usekarma/karma/shared/message"
)

// Run runs the suite as parallel subtests of t.
func Run(t *testing.T, newStore func(t *testing.T) changeset.Store) {
	t.Helper()
	root := fmt.Sprintf("cst-%08x", rand.Uint32())
	tests := []struct {
		name string
		run  func(t *testing.T, s changeset.Store, p string)
	}{
		{"CreateGet", testCreateGet},
		{"CreateIdempotent", testCreateIdempotent},
		{"GetNotFound", testGetNotFound},
		{"UpdateNotFound", testUpdateNotFound},
		{"Update", testUpdate},
		{"UpdateFnError", testUpdateFnError},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"UpdateUnchanged", testUpdateUnchanged},
		{"Finished", testFinished},
		{"EachCommit", testEachCommit},
		{"ListNewestFirst", testList},
		{"LastApplied", testLastApplied},
		{"LastAppliedOutOfOrder", testLastAppliedOutOfOrder},
		{"Unfinished", testUnfinished},
		{"CreateAfterLook", testCreateAfterLook},
		{"Promoting", testPromoting},
		{"ThousandComponents", testThousand},
		{"ApprovalsAtOnce", testApprovalsAtOnce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t), root+"-"+strings.ToLower(tc.name))
		})
	}
}

// t0 is the base creation time (whole milliseconds, UTC).
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

// Sample builds a change set of n components in waves of 10: each component after the first
// wave consumes two keys of two components of the previous wave and carries a resolved config
// of a few hundred bytes, as resolve produces them. Shared with backend tests (sizes).
func Sample(id string, n int) *changeset.ChangeSet {
	cs := &changeset.ChangeSet{
		ID: id, Env: "dev", CorrelationID: "corr-" + id, Source: message.SourceGit,
		RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: "0123456789abcdef0123456789abcdef01234567", Keys: []string{"vpc_cidr"}}},
		Actor:      message.Actor{Kind: "git", Name: "Ada Lovelace <ada@example.com>"},
		CreatedAt:  t0, Nodes: map[string]*changeset.Node{},
	}
	comp := func(i int) string { return fmt.Sprintf("dev/service/component-%04d", i) }
	for i := range n {
		wave := i / 10
		if wave >= len(cs.Waves) {
			cs.Waves = append(cs.Waves, nil)
		}
		cs.Waves[wave] = append(cs.Waves[wave], comp(i))
		cfg, _ := json.Marshal(map[string]any{
			"type": "service", "nickname": fmt.Sprintf("component-%04d", i), "version": "1.4.2",
			"inputs": map[string]any{"instance_type": "t3.medium", "min_size": 2, "max_size": 6,
				"subnet_ids": "${dev/network/main.private_subnet_ids}", "tags": map[string]string{"team": "platform", "cost-center": "cc-1234"}},
		})
		node := &changeset.Node{Component: comp(i), Wave: wave, Root: wave == 0, Config: cfg,
			ConfigHash: fmt.Sprintf("%064x", i), State: changeset.Pending, DeploymentID: changeset.DeploymentID(id, comp(i))}
		if wave > 0 {
			for _, up := range []int{(wave-1)*10 + i%10, (wave-1)*10 + (i+3)%10} {
				node.Upstreams = append(node.Upstreams, changeset.Upstream{Component: comp(up), Consumes: []string{"private_subnet_ids", "security_group_id"}})
				cs.Nodes[comp(up)].Dependents = append(cs.Nodes[comp(up)].Dependents, comp(i))
			}
		}
		cs.Nodes[comp(i)] = node
	}
	return cs
}

func create(t *testing.T, s changeset.Store, cs *changeset.ChangeSet) {
	t.Helper()
	created, err := s.Create(t.Context(), cs)
	if err != nil || !created {
		t.Fatalf("Create(%s) = %v, %v; want true, nil", cs.ID, created, err)
	}
}

func get(t *testing.T, s changeset.Store, id string) *changeset.ChangeSet {
	t.Helper()
	cs, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return cs
}

// same compares two change sets as JSON (times compared as instants).
func same(t *testing.T, what string, got, want *changeset.ChangeSet) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s: CreatedAt %v, want %v", what, got.CreatedAt, want.CreatedAt)
	}
	g, w := *got, *want
	g.CreatedAt, w.CreatedAt = time.Time{}, time.Time{}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("%s differs:\n got %.2000s\nwant %.2000s", what, gb, wb)
	}
}

func testCreateGet(t *testing.T, s changeset.Store, p string) {
	cs := Sample(p+"-a", 12)
	cs.Approved, cs.ApprovedBy, cs.AutoApprove = true, "bob", true
	cs.Nodes[cs.Waves[1][0]].Causes = []message.Cause{{Kind: message.CauseDeployment, ID: "dep-1", Keys: []string{}}}
	create(t, s, cs)
	same(t, "Get after Create", get(t, s, cs.ID), cs)
}

func testCreateIdempotent(t *testing.T, s changeset.Store, p string) {
	first := Sample(p+"-a", 3)
	create(t, s, first)
	second := Sample(p+"-a", 5)
	second.Source = "other"
	created, err := s.Create(t.Context(), second)
	if err != nil || created {
		t.Fatalf("second Create = %v, %v; want false, nil", created, err)
	}
	same(t, "Get after a second Create", get(t, s, first.ID), first)
}

func testGetNotFound(t *testing.T, s changeset.Store, p string) {
	cs, err := s.Get(t.Context(), p+"-missing")
	if !errors.Is(err, changeset.ErrNotFound) {
		t.Fatalf("Get(missing) = %v, %v; want an error matching changeset.ErrNotFound", cs, err)
	}
}

func testUpdateNotFound(t *testing.T, s changeset.Store, p string) {
	called := false
	_, err := s.Update(t.Context(), p+"-missing", func(*changeset.ChangeSet) error { called = true; return nil })
	if !errors.Is(err, changeset.ErrNotFound) {
		t.Errorf("Update(missing) = %v; want an error matching changeset.ErrNotFound", err)
	}
	if called {
		t.Errorf("Update(missing) called fn")
	}
}

func testUpdate(t *testing.T, s changeset.Store, p string) {
	cs := Sample(p+"-a", 3)
	create(t, s, cs)
	root := cs.Waves[0][0]
	got, err := s.Update(t.Context(), cs.ID, func(cs *changeset.ChangeSet) error {
		cs.Approved, cs.ApprovedBy = true, "carol"
		return cs.MarkApplied(root, []string{"private_subnet_ids"})
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got == nil || !got.Approved || got.Nodes[root].State != changeset.Applied {
		t.Fatalf("Update returned %+v; want the updated change set", got)
	}
	same(t, "Get after Update", get(t, s, cs.ID), got)
	// A second update sees the first.
	got2, err := s.Update(t.Context(), cs.ID, func(cs *changeset.ChangeSet) error {
		if cs.ApprovedBy != "carol" {
			return fmt.Errorf("fn saw ApprovedBy %q, want carol", cs.ApprovedBy)
		}
		cs.Rejected = "no"
		return nil
	})
	if err != nil || got2.Rejected != "no" {
		t.Fatalf("second Update = %+v, %v", got2, err)
	}
}

func testUpdateFnError(t *testing.T, s changeset.Store, p string) {
	cs := Sample(p+"-a", 3)
	create(t, s, cs)
	boom := errors.New("boom")
	got, err := s.Update(t.Context(), cs.ID, func(cs *changeset.ChangeSet) error {
		cs.Approved = true
		return fmt.Errorf("refused: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update with failing fn = %v, %v; want fn's error", got, err)
	}
	same(t, "Get after a failed Update", get(t, s, cs.ID), cs)
}

// testUpdateConcurrent: workers update one change set at the same time, each appending its
// own cause to one node and setting its own node's state; every update must land.
func testUpdateConcurrent(t *testing.T, s changeset.Store, p string) {
	const workers = 16
	cs := Sample(p+"-a", workers+1)
	create(t, s, cs)
	target := cs.Waves[0][0]
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := fmt.Sprintf("dev/service/component-%04d", i+1)
			_, err := s.Update(t.Context(), cs.ID, func(cs *changeset.ChangeSet) error {
				n := cs.Nodes[target]
				n.Causes = append(n.Causes, message.Cause{Kind: message.CauseDeployment, ID: fmt.Sprintf("dep-%02d", i)})
				cs.Nodes[mine].Detail = fmt.Sprintf("touched by %d", i)
				return nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Update: %v", err)
		}
	}
	got := get(t, s, cs.ID)
	var ids []string
	for _, c := range got.Nodes[target].Causes {
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	var want []string
	for i := range workers {
		want = append(want, fmt.Sprintf("dep-%02d", i))
	}
	if !slices.Equal(ids, want) {
		t.Errorf("causes after %d concurrent updates = %v, want %v (an update was lost or applied twice)", workers, ids, want)
	}
	for i := range workers {
		mine := fmt.Sprintf("dev/service/component-%04d", i+1)
		if d := got.Nodes[mine].Detail; d != fmt.Sprintf("touched by %d", i) {
			t.Errorf("%s detail = %q, want %q", mine, d, fmt.Sprintf("touched by %d", i))
		}
	}
}

func testUpdateUnchanged(t *testing.T, s changeset.Store, p string) {
	cs := Sample(p+"-a", 3)
	cs.QueuedBehind = []string{p + "-earlier"}
	create(t, s, cs)
	calls := 0
	got, err := s.Update(t.Context(), cs.ID, func(c *changeset.ChangeSet) error {
		calls++
		c.Release() // nothing finished: nothing changes
		return nil
	})
	if err != nil || calls != 1 {
		t.Fatalf("Update changing nothing = %v (fn called %d times); want nil, once", err, calls)
	}
	same(t, "Update changing nothing", got, cs)
	same(t, "Get after an Update changing nothing", get(t, s, cs.ID), cs)
	// The next update starts from the same document.
	got, err = s.Update(t.Context(), cs.ID, func(c *changeset.ChangeSet) error {
		c.Release(p + "-earlier")
		return nil
	})
	if err != nil || !got.Started || len(got.QueuedBehind) != 0 {
		t.Fatalf("Update releasing it = %+v, %v; want it started", got, err)
	}
	same(t, "Get after releasing", get(t, s, cs.ID), got)
}

func testFinished(t *testing.T, s changeset.Store, p string) {
	running := Sample(p+"-running", 2)
	create(t, s, running)
	settled := Sample(p+"-settled", 2)
	for _, n := range settled.Nodes {
		n.State = changeset.Skipped
	}
	create(t, s, settled)
	finishing := Sample(p+"-finishing", 2)
	create(t, s, finishing)
	if _, err := s.Update(t.Context(), finishing.ID, func(cs *changeset.ChangeSet) error {
		for _, n := range cs.Nodes {
			n.State = changeset.Applied
		}
		return nil
	}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	ids := []string{running.ID, p + "-missing", settled.ID, finishing.ID}
	got, err := changeset.Finished(t.Context(), s, ids)
	if want := ids[1:]; err != nil || !slices.Equal(got, want) {
		t.Errorf("Finished(%v) = %v, %v; want %v", ids, got, err, want)
	}
	if got, err := changeset.Finished(t.Context(), s, ids[:1]); err != nil || len(got) != 0 {
		t.Errorf("Finished of a running change set = %v, %v; want none", got, err)
	}
}

// testEachCommit: 70 change sets of one environment (more than one page of a CommitLister), one
// without a commit, and one of another environment; the commits come newest first, and stop
// when asked to.
func testEachCommit(t *testing.T, s changeset.Store, p string) {
	env := p + "-env"
	var want []string
	for i := range 70 {
		cs := Sample(fmt.Sprintf("%s-%02d", p, i), 1)
		cs.Env, cs.CreatedAt = env, t0.Add(time.Duration(i)*time.Second)
		if i != 33 {
			cs.Commit = fmt.Sprintf("%040x", i)
		}
		create(t, s, cs)
		want = append([]string{cs.Commit}, want...)
	}
	other := Sample(p+"-other", 1)
	other.Env, other.Commit, other.CreatedAt = p+"-elsewhere", "elsewhere", t0.Add(time.Hour)
	create(t, s, other)
	var got []string
	err := changeset.EachCommit(t.Context(), s, env, func(commit string) (bool, error) {
		got = append(got, commit)
		return true, nil
	})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("EachCommit = %v, %v; want newest first %v", got, err, want)
	}
	got = nil
	stop := errors.New("stop")
	err = changeset.EachCommit(t.Context(), s, env, func(commit string) (bool, error) {
		got = append(got, commit)
		if len(got) == 3 {
			return false, stop
		}
		return true, nil
	})
	if !errors.Is(err, stop) || !slices.Equal(got, want[:3]) {
		t.Errorf("EachCommit stopped by fn's error = %v, %v; want %v, that error", got, err, want[:3])
	}
}

func testList(t *testing.T, s changeset.Store, p string) {
	offsets := map[string]time.Duration{"b": time.Hour, "a": 0, "c": 2 * time.Hour, "d": 90 * time.Minute}
	for _, name := range []string{"b", "a", "c", "d"} { // created out of time order
		cs := Sample(p+"-"+name, 2)
		cs.CreatedAt = t0.Add(offsets[name])
		create(t, s, cs)
	}
	all, err := s.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var got []string
	for _, cs := range all {
		if strings.HasPrefix(cs.ID, p+"-") {
			got = append(got, strings.TrimPrefix(cs.ID, p+"-"))
			if len(cs.Nodes) != 2 {
				t.Errorf("List: %s has %d nodes, want 2", cs.ID, len(cs.Nodes))
			}
		}
	}
	if want := []string{"c", "d", "b", "a"}; !slices.Equal(got, want) {
		t.Errorf("List (ours) = %v, want newest first %v", got, want)
	}
}

// listOnly is a store seen through changeset.Store alone: changeset.LastApplied answers from List.
type listOnly struct{ changeset.Store }

// testLastApplied: of an environment's change sets, the latest whose node of a component has an
// outcome is the one that deployed it last — not a later one still planning it, nor one of
// another environment — and a component none applied has none.
func testLastApplied(t *testing.T, s changeset.Store, p string) {
	env := p + "-env"
	comp := "dev/service/component-0000"
	applied := func(name string, at time.Duration, env string, cfg string, outcome bool) {
		cs := Sample(p+"-"+name, 2)
		cs.Env, cs.CreatedAt = env, t0.Add(at)
		n := cs.Nodes[comp]
		n.Config = json.RawMessage(cfg)
		if outcome {
			n.State, n.Outcome = changeset.Applied, &changeset.Outcome{RuntimeVersion: 1, Config: json.RawMessage(cfg)}
		}
		create(t, s, cs)
	}
	applied("older", 0, env, `{"size":"small"}`, true)
	applied("deployed", time.Hour, env, `{"size":"medium"}`, true)
	applied("planning", 2*time.Hour, env, `{"size":"large"}`, false)
	applied("elsewhere", 3*time.Hour, p+"-other", `{"size":"huge"}`, true)
	for name, st := range map[string]changeset.Store{"store": s, "list": listOnly{s}} {
		got, err := changeset.LastApplied(t.Context(), st, env, []string{comp, "dev/service/component-0001", "dev/service/never"})
		if err != nil {
			t.Fatalf("LastApplied (%s): %v", name, err)
		}
		if n := got[comp]; n == nil || string(n.DeployedConfig()) != `{"size":"medium"}` {
			t.Errorf("LastApplied (%s) of %s = %+v, want the node of %s-deployed", name, comp, n, p)
		}
		if n, ok := got["dev/service/component-0001"]; ok {
			t.Errorf("LastApplied (%s): a node never applied counts as deployed: %+v", name, n)
		}
		if n, ok := got["dev/service/never"]; ok {
			t.Errorf("LastApplied (%s): a component no change set has: %+v", name, n)
		}
	}
}

// record records an outcome on the node of comp in change set id (as workers/apply does), or,
// when outcome is false, takes it away (as a retry of the deployment does: cmd/karma).
func record(t *testing.T, s changeset.Store, id, comp, cfg string, outcome bool) {
	t.Helper()
	_, err := s.Update(t.Context(), id, func(cs *changeset.ChangeSet) error {
		n := cs.Nodes[comp]
		if outcome {
			n.State, n.Outcome = changeset.Applied, &changeset.Outcome{RuntimeVersion: 1, Config: json.RawMessage(cfg)}
		} else {
			n.State, n.Outcome = changeset.Scheduled, nil
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update(%s): %v", id, err)
	}
}

// lastApplied asks changeset.LastApplied of st (of all components at once, and of each alone)
// and of st seen through List alone, and checks each gives, for each component of want, the node whose deployed config is want's ("" for none).
func lastApplied(t *testing.T, what string, st changeset.Store, env string, want map[string]string) {
	t.Helper()
	comps := slices.Sorted(maps.Keys(want))
	for name, st := range map[string]changeset.Store{"store": st, "list": listOnly{st}, "store, one at a time": st} {
		got, err := changeset.LastApplied(t.Context(), st, env, comps)
		if strings.HasSuffix(name, "one at a time") {
			got = map[string]*changeset.Node{}
			for _, c := range comps {
				one, err1 := changeset.LastApplied(t.Context(), st, env, []string{c})
				if err = err1; err != nil {
					break
				}
				if one[c] != nil {
					got[c] = one[c]
				}
			}
		}
		if err != nil {
			t.Fatalf("%s: LastApplied (%s): %v", what, name, err)
		}
		for _, c := range comps {
			n := got[c]
			switch {
			case want[c] == "" && n != nil:
				t.Errorf("%s: LastApplied (%s) of %s = %s, want none", what, name, c, n.DeployedConfig())
			case want[c] != "" && n == nil:
				t.Errorf("%s: LastApplied (%s) of %s = none, want the node deploying %s", what, name, c, want[c])
			case want[c] != "" && string(n.DeployedConfig()) != want[c]:
				t.Errorf("%s: LastApplied (%s) of %s = the node deploying %s (config %s), want the node deploying %s", what, name, c, n.DeployedConfig(), n.Config, want[c])
			}
		}
	}
}

// testLastAppliedOutOfOrder: the latest change set applying a component is the answer whatever
// the order the outcomes are recorded in — an earlier change set recording its outcome after a
// later one does not take its place, nor does one of another environment — of two created at
// the same time the first List gives, and once the latest's outcome is taken away (its
// deployment retried), the one before it.
func testLastAppliedOutOfOrder(t *testing.T, s changeset.Store, p string) {
	env := p + "-env"
	a, b := "dev/service/component-0000", "dev/service/component-0001"
	planned := func(name string, at time.Duration, env string) string {
		cs := Sample(p+"-"+name, 2)
		cs.Env, cs.CreatedAt = env, t0.Add(at)
		create(t, s, cs)
		return cs.ID
	}
	first, second, third := planned("1", 0, env), planned("2", time.Hour, env), planned("3", 2*time.Hour, env)
	other := planned("other", 3*time.Hour, p+"-other")
	lastApplied(t, "nothing applied yet", s, env, map[string]string{a: "", b: ""})

	record(t, s, third, a, `{"at":3}`, true)
	record(t, s, first, a, `{"at":1}`, true)
	record(t, s, second, a, `{"at":2}`, true)
	record(t, s, other, a, `{"at":"other"}`, true)
	record(t, s, first, b, `{"at":1}`, true)
	lastApplied(t, "the latest recorded first", s, env, map[string]string{a: `{"at":3}`, b: `{"at":1}`})

	record(t, s, third, a, "", false)
	lastApplied(t, "the latest's outcome taken away", s, env, map[string]string{a: `{"at":2}`, b: `{"at":1}`})
	record(t, s, third, a, `{"at":"3 again"}`, true)
	lastApplied(t, "the latest applied again", s, env, map[string]string{a: `{"at":"3 again"}`})

	// Two change sets created at the same time: the first List gives (the smaller id), whichever
	// records its outcome first.
	tie := p + "-tie"
	y, x := planned("y", time.Hour, tie), planned("x", time.Hour, tie)
	record(t, s, x, a, `{"at":"x"}`, true)
	record(t, s, y, a, `{"at":"y"}`, true)
	record(t, s, y, b, `{"at":"y"}`, true)
	record(t, s, x, b, `{"at":"x"}`, true)
	lastApplied(t, "two at the same time", s, tie, map[string]string{a: `{"at":"x"}`, b: `{"at":"x"}`})
}

// RunUpgrade checks changeset.LastApplied on change sets a store wrote before it kept any record
// of the deployments applied last. newOld returns a store and upgrade, which makes what was
// written through it look as such a version left it (its records of the deployments applied
// last gone) and returns the store as the current version opens it then.
func RunUpgrade(t *testing.T, newOld func(t *testing.T) (s changeset.Store, upgrade func(t *testing.T) changeset.Store)) {
	t.Helper()
	p := fmt.Sprintf("csu-%08x", rand.Uint32())
	s, upgrade := newOld(t)
	env := p + "-env"
	a, b := "dev/service/component-0000", "dev/service/component-0001"
	var ids []string
	for i, outcome := range []bool{true, true, false} {
		cs := Sample(fmt.Sprintf("%s-%d", p, i), 2)
		cs.Env, cs.CreatedAt = env, t0.Add(time.Duration(i)*time.Hour)
		create(t, s, cs)
		ids = append(ids, cs.ID)
		if outcome {
			record(t, s, cs.ID, a, fmt.Sprintf(`{"at":%d}`, i), true)
		}
	}
	record(t, s, ids[0], b, `{"at":0}`, true)
	s = upgrade(t)
	lastApplied(t, "after the upgrade", s, env, map[string]string{a: `{"at":1}`, b: `{"at":0}`, "dev/service/never": ""})
	// Outcomes recorded since: an earlier change set's does not take the later one's place.
	record(t, s, ids[2], b, `{"at":2}`, true)
	record(t, s, ids[1], b, `{"at":1}`, true)
	lastApplied(t, "outcomes recorded after the upgrade", s, env, map[string]string{a: `{"at":1}`, b: `{"at":2}`})
}

func testThousand(t *testing.T, s changeset.Store, p string) {
	cs := Sample(p+"-big", 1000)
	create(t, s, cs)
	root := cs.Waves[0][0]
	got, err := s.Update(t.Context(), cs.ID, func(cs *changeset.ChangeSet) error {
		return cs.MarkApplied(root, []string{"private_subnet_ids"})
	})
	if err != nil {
		t.Fatalf("Update of a 1,000-component change set: %v", err)
	}
	same(t, "Get of a 1,000-component change set", get(t, s, cs.ID), got)
}

// testApprovalsAtOnce: the governance rules and approvals round-trip, and approvers approving at
// the same moment are all counted — exactly once each — with the change set approved once the
// number needed is reached (changeset.Approve over the store's Update).
func testApprovalsAtOnce(t *testing.T, s changeset.Store, p string) {
	const approvers = 4
	cs := Sample(p+"-a", 3)
	cs.Env, cs.Actor = "prod", message.Actor{Kind: "git", Name: "Ada <ada@example.com>"}
	cs.Govern(governance.Rules{Configured: true, Environment: governance.Environment{Protected: true, Approvals: approvers,
		ApprovalExpiry: governance.Duration(72 * time.Hour)}, Identities: governance.Identities{"ada": {"ada-cli", "ada@example.com"}}}, "Ada <ada@example.com>")
	create(t, s, cs)
	same(t, "Get of a governed change set", get(t, s, cs.ID), cs)
	var wg sync.WaitGroup
	errs := make(chan error, approvers+1)
	for i := range approvers + 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			by := fmt.Sprintf("approver-%d", i%approvers) // approver-0 approves twice
			_, err := changeset.ApproveAt(t.Context(), s, cs.ID, by, t0.Add(time.Hour))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent approval: %v", err)
		}
	}
	got := get(t, s, cs.ID)
	if !got.Approved || len(got.Approvals) != approvers {
		t.Errorf("after %d approvers at once: approved %v, approvals %+v", approvers, got.Approved, got.Approvals)
	}
	if _, err := changeset.ApproveAt(t.Context(), s, cs.ID, "ada-cli", t0.Add(time.Hour)); !errors.Is(err, changeset.ErrIneligible) {
		t.Errorf("the author approving: %v", err)
	}
}

// queued builds a change set of env created at t0+at with a pending node for each of comps
// (Applied instead when done), queued behind behind.
func queued(id, env string, at time.Duration, done bool, behind []string, comps ...string) *changeset.ChangeSet {
	cs := Sample(id, 0)
	cs.Env, cs.CreatedAt, cs.QueuedBehind = env, t0.Add(at), behind
	for _, c := range comps {
		n := &changeset.Node{Component: c, State: changeset.Pending, DeploymentID: changeset.DeploymentID(id, c)}
		if done {
			n.State = changeset.Applied
		}
		cs.Nodes[c] = n
	}
	return cs
}

// setState sets the state of every node of change set id (as apply and a retry do).
func setState(t *testing.T, s changeset.Store, id string, state string) {
	t.Helper()
	if _, err := s.Update(t.Context(), id, func(cs *changeset.ChangeSet) error {
		for _, n := range cs.Nodes {
			n.State = state
		}
		return nil
	}); err != nil {
		t.Fatalf("Update(%s): %v", id, err)
	}
}

// unfinished asks changeset.Unfinished of st and of st seen through List alone, and checks each
// gives want: "<id suffix> behind=<ids> comps=<components>" per change set, newest first.
func unfinished(t *testing.T, what string, st changeset.Store, p, env string, comps []string, want ...string) {
	t.Helper()
	for name, st := range map[string]changeset.Store{"store": st, "list": listOnly{st}} {
		got, err := changeset.Unfinished(t.Context(), st, env, comps)
		if err != nil {
			t.Fatalf("%s: Unfinished (%s): %v", what, name, err)
		}
		var desc []string
		for _, q := range got {
			cs := get(t, st, q.ID)
			if !q.CreatedAt.Equal(cs.CreatedAt) {
				t.Errorf("%s: Unfinished (%s): %s created at %v, want %v", what, name, q.ID, q.CreatedAt, cs.CreatedAt)
			}
			desc = append(desc, fmt.Sprintf("%s behind=%s comps=%s", strings.TrimPrefix(q.ID, p+"-"),
				strings.Join(q.QueuedBehind, ","), strings.Join(q.Components, ",")))
		}
		if !slices.Equal(desc, want) {
			t.Errorf("%s: Unfinished (%s) of %v =\n %q\nwant\n %q", what, name, comps, desc, want)
		}
	}
}

// unfinishedSets asks st for every change set not done (changeset.UnfinishedSetLister, else
// List) and st seen through List alone, and checks each gives, of p's change sets, want (id
// suffixes, newest first).
func unfinishedSets(t *testing.T, what string, st changeset.Store, p string, want ...string) {
	t.Helper()
	for name, st := range map[string]changeset.Store{"store": st, "list": listOnly{st}} {
		var all []*changeset.ChangeSet
		var err error
		if l, ok := st.(changeset.UnfinishedSetLister); ok {
			all, err = l.UnfinishedSets(t.Context())
		} else if all, err = st.List(t.Context()); err == nil {
			all = slices.DeleteFunc(all, func(cs *changeset.ChangeSet) bool { return cs.Done() })
		}
		if err != nil {
			t.Fatalf("%s: unfinished sets (%s): %v", what, name, err)
		}
		var got []string
		for _, cs := range all {
			if cs.Done() {
				t.Errorf("%s: unfinished sets (%s): %s is done", what, name, cs.ID)
			}
			if id, ok := strings.CutPrefix(cs.ID, p+"-"); ok {
				got = append(got, id)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: unfinished sets (%s) = %q, want %q", what, name, got, want)
		}
	}
}

// testUnfinished: the unfinished change sets of an environment sharing a component with those
// asked, through their lives: created, queued and released, done, started again.
func testUnfinished(t *testing.T, s changeset.Store, p string) {
	env, other := p+"-env", p+"-other"
	const a, b, c, d, x = "dev/a", "dev/b", "dev/c", "dev/d", "dev/x"
	// Asked once first: a store keeping records of them makes sure they are complete.
	unfinished(t, "nothing yet", s, p, env, []string{a})
	first, second := p+"-first", p+"-second"
	create(t, s, queued(first, env, 0, false, nil, a, b))
	create(t, s, queued(second, env, time.Hour, false, []string{first}, b, c))
	create(t, s, queued(p+"-third", env, time.Hour, false, nil, d))
	create(t, s, queued(p+"-done", env, 2*time.Hour, true, nil, a))
	create(t, s, queued(p+"-elsewhere", other, 3*time.Hour, false, nil, a))
	unfinished(t, "created", s, p, env, []string{a}, "first behind= comps="+a)
	unfinished(t, "created", s, p, env, []string{x, c, b}, "second behind="+first+" comps="+b+","+c, "first behind= comps="+b)
	unfinished(t, "created", s, p, env, nil, "second behind="+first+" comps=", "third behind= comps=", "first behind= comps=")
	unfinished(t, "created", s, p, env, []string{}, []string{}...)
	unfinished(t, "created", s, p, env, []string{x})
	unfinished(t, "created", s, p, other, []string{a, b}, "elsewhere behind= comps="+a)
	unfinishedSets(t, "created", s, p, "elsewhere", "second", "third", "first")

	setState(t, s, first, changeset.Applied)
	unfinished(t, "the first done", s, p, env, []string{a, b}, "second behind="+first+" comps="+b)
	if _, err := s.Update(t.Context(), second, func(cs *changeset.ChangeSet) error { cs.Release(first); return nil }); err != nil {
		t.Fatal(err)
	}
	unfinished(t, "the second released", s, p, env, []string{c}, "second behind= comps="+c)
	setState(t, s, first, changeset.Scheduled) // its deployments retried
	unfinished(t, "the first started again", s, p, env, []string{a}, "first behind= comps="+a)
	setState(t, s, p+"-done", changeset.Scheduled)
	unfinished(t, "the one created done started again", s, p, env, []string{a}, "done behind= comps="+a, "first behind= comps="+a)
	unfinishedSets(t, "the one created done started again", s, p, "elsewhere", "done", "second", "third", "first")
	setState(t, s, p+"-done", changeset.Applied)
	setState(t, s, second, changeset.Skipped)
	unfinished(t, "all but two done", s, p, env, nil, "third behind= comps=", "first behind= comps=")
	unfinishedSets(t, "all but two done", s, p, "elsewhere", "third", "first")
}

// RunListingsUpgrade checks changeset.Unfinished and the change sets with promotion work on
// change sets a store wrote before it kept any record of either. newOld is as for RunUpgrade:
// upgrade makes what was written through the store look as such a version left it.
func RunListingsUpgrade(t *testing.T, newOld func(t *testing.T) (s changeset.Store, upgrade func(t *testing.T) changeset.Store)) {
	t.Helper()
	p := fmt.Sprintf("csq-%08x", rand.Uint32())
	s, upgrade := newOld(t)
	env := p + "-env"
	const a, b = "dev/a", "dev/b"
	first, second := p+"-first", p+"-second"
	create(t, s, queued(first, env, 0, false, nil, a))
	create(t, s, queued(second, env, time.Hour, false, []string{first}, a, b))
	create(t, s, queued(p+"-done", env, 2*time.Hour, true, nil, a))
	create(t, s, queued(p+"-finished", env, 3*time.Hour, false, nil, b))
	setState(t, s, p+"-finished", changeset.Applied)
	soaking := queued(p+"-soaking", env, 3*time.Hour, true, nil, b)
	soaking.Promotion = &changeset.Promotion{Next: "prod", DueAt: t0.Add(4 * time.Hour)}
	create(t, s, soaking)
	s = upgrade(t)
	for _, when := range []string{"after the upgrade", "again"} {
		unfinishedSets(t, when, s, p, "second", "first") // first: it may backfill
		unfinished(t, when, s, p, env, []string{a, b}, "second behind="+first+" comps="+a+","+b, "first behind= comps="+a)
		promoting(t, when, s, p, "soaking")
	}
	// Written since: the first finishes, a third comes.
	setState(t, s, first, changeset.Applied)
	create(t, s, queued(p+"-third", env, 4*time.Hour, false, []string{second}, b))
	unfinished(t, "written since", s, p, env, []string{a, b}, "third behind="+second+" comps="+b, "second behind="+first+" comps="+a+","+b)
}

// promoting asks st for the change sets with promotion work (changeset.PromotionLister, else
// List) and st seen through List alone, and checks each gives want (id suffixes of p's change
// sets, newest first).
func promoting(t *testing.T, what string, st changeset.Store, p string, want ...string) {
	t.Helper()
	for name, st := range map[string]changeset.Store{"store": st, "list": listOnly{st}} {
		var all []*changeset.ChangeSet
		var err error
		if l, ok := st.(changeset.PromotionLister); ok {
			all, err = l.Promoting(t.Context())
		} else if all, err = st.List(t.Context()); err == nil {
			all = slices.DeleteFunc(all, func(cs *changeset.ChangeSet) bool { return !cs.PromotionWaiting() })
		}
		if err != nil {
			t.Fatalf("%s: promoting (%s): %v", what, name, err)
		}
		var got []string
		for _, cs := range all {
			if !cs.PromotionWaiting() {
				t.Errorf("%s: promoting (%s): %s has no promotion work", what, name, cs.ID)
			}
			if id, ok := strings.CutPrefix(cs.ID, p+"-"); ok {
				got = append(got, id)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: promoting (%s) = %q, want %q", what, name, got, want)
		}
	}
}

// testPromoting: the change sets with promotion work through their lives: a promotion soaking,
// then published; a held try, then tried again or rejected.
func testPromoting(t *testing.T, s changeset.Store, p string) {
	env := p + "-env"
	update := func(id string, fn func(cs *changeset.ChangeSet)) {
		t.Helper()
		if _, err := s.Update(t.Context(), id, func(cs *changeset.ChangeSet) error { fn(cs); return nil }); err != nil {
			t.Fatalf("Update(%s): %v", id, err)
		}
	}
	promoting(t, "nothing yet", s, p)
	running := queued(p+"-running", env, 0, false, nil, "dev/a")
	running.Promotion = &changeset.Promotion{Next: "prod", Soak: time.Hour}
	create(t, s, running)
	soaking := queued(p+"-soaking", env, time.Hour, true, nil, "dev/a")
	soaking.Promotion = &changeset.Promotion{Next: "prod", DueAt: t0.Add(2 * time.Hour)}
	create(t, s, soaking)
	held := queued(p+"-held", env, 2*time.Hour, true, nil)
	held.Held = &changeset.Hold{Reason: "the environment moved", Attempt: 1, Waiting: []string{"dev"}, On: "x"}
	create(t, s, held)
	promoting(t, "created", s, p, "held", "soaking")

	update(running.ID, func(cs *changeset.ChangeSet) { cs.Promotion.DueAt = t0.Add(time.Hour) })
	promoting(t, "the running one soaking", s, p, "held", "soaking", "running")
	update(soaking.ID, func(cs *changeset.ChangeSet) { cs.MarkPromoted(t0.Add(3 * time.Hour)) })
	promoting(t, "one promoted", s, p, "held", "running")
	update(held.ID, func(cs *changeset.ChangeSet) { cs.Held.RetriedAs = p + "-held@2" })
	promoting(t, "the held one tried again", s, p, "running")
	again := queued(p+"-held@2", env, 3*time.Hour, true, nil)
	again.Held = &changeset.Hold{Reason: "the environment moved", Attempt: 2, Waiting: []string{"dev"}, On: "y"}
	create(t, s, again)
	promoting(t, "held again", s, p, "held@2", "running")
	update(again.ID, func(cs *changeset.ChangeSet) { cs.RejectedBy = "carol" })
	promoting(t, "the held one rejected", s, p, "running")
}

// testCreateAfterLook: a change set created after a look that missed another, created in
// between, which shares a component with it.
func testCreateAfterLook(t *testing.T, s changeset.Store, p string) {
	env, other := p+"-env", p+"-other"
	const a, b, c, d = "dev/a", "dev/b", "dev/c", "dev/d"
	ctx := t.Context()
	unfinished(t, "nothing yet", s, p, env, []string{a}) // a store keeping records makes sure they are complete
	createAfter := func(cs *changeset.ChangeSet, looked ...string) (bool, error) {
		t.Helper()
		return changeset.CreateAfterLook(ctx, s, cs, looked)
	}
	first := queued(p+"-first", env, 0, false, nil, a, b)
	if created, err := createAfter(first); err != nil || !created {
		t.Fatalf("CreateAfterLook(first) = %v, %v; want true, nil", created, err)
	}
	// created since their looks, which found nothing: sharing nothing with first, or of
	// another environment
	for _, cs := range []*changeset.ChangeSet{queued(p+"-apart", env, time.Hour, false, nil, c, d), queued(p+"-elsewhere", other, time.Hour, false, nil, a, b)} {
		if created, err := createAfter(cs); err != nil || !created {
			t.Fatalf("CreateAfterLook(%s), nothing sharing a component created since its look = %v, %v; want true, nil", cs.ID, created, err)
		}
	}
	second := queued(p+"-second", env, 2*time.Hour, false, nil, b, c)
	created, err := createAfter(second, p+"-apart") // its look found apart alone: first came since
	if _, ok := s.(changeset.LookedCreator); ok {
		if created || !errors.Is(err, changeset.ErrLookedTooEarly) {
			t.Fatalf("CreateAfterLook(second), first created since its look = %v, %v; want false and an error matching changeset.ErrLookedTooEarly", created, err)
		}
		if _, err := s.Get(ctx, second.ID); !errors.Is(err, changeset.ErrNotFound) {
			t.Fatalf("Get(second) after a refused create: %v; want an error matching changeset.ErrNotFound", err)
		}
		// looked again: behind first
		second.QueuedBehind = []string{first.ID}
		if created, err = createAfter(second, first.ID, p+"-apart"); err != nil || !created {
			t.Fatalf("CreateAfterLook(second) after a second look = %v, %v; want true, nil", created, err)
		}
	} else if err != nil || !created {
		t.Fatalf("CreateAfterLook(second) = %v, %v; want true, nil", created, err)
	}
	if created, err := createAfter(queued(second.ID, env, 3*time.Hour, false, nil, a)); err != nil || created {
		t.Fatalf("CreateAfterLook(second) again = %v, %v; want false, nil", created, err)
	}
	unfinished(t, "created", s, p, env, []string{b}, "second behind="+strings.Join(second.QueuedBehind, ",")+" comps="+b, "first behind= comps="+b)
}
