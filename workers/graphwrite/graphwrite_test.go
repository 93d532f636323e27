package graphwrite_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/workers/graphwrite"
)

const sha1 = "512423cb3a4857a38f472862b51e4ab1a1730f06"

var gitActor = message.Actor{Kind: "git", Name: "Ada Lovelace <ada@example.com>"}

type stageEnv struct {
	q       *embedded.Queue
	lineage *embedded.Lineage
	graph   *embedded.GraphStore
	w       *graphwrite.Worker
}

func newStage(t *testing.T) *stageEnv {
	t.Helper()
	db := wt.NewDB(t)
	ctx := context.Background()
	q, err := embedded.NewQueue(ctx, db, embedded.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := embedded.NewLineage(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	g, err := embedded.NewGraphStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	return &stageEnv{q: q, lineage: l, graph: g, w: &graphwrite.Worker{Graphs: wt.RepoGraphs{Root: wt.ExamplesDir}, Store: g, Lineage: l}}
}

func (s *stageEnv) handle(t *testing.T, in message.Envelope) []message.Envelope {
	t.Helper()
	wt.Validate(t, in)
	out, action, err := wt.Process(t, s.q, s.w.Handle, in)
	if action != pipeline.Ack || err != nil {
		t.Fatalf("%s: action %v, err %v", in.Type, action, err)
	}
	wt.ValidateAll(t, out)
	return out
}

// story is one change set on the examples: a commit on prod/vpc/core, with fixed ids.
type story struct {
	root  message.Envelope
	csID  string
	vpc   string // deployment id of prod/vpc/core
	ecs   string // deployment id of prod/ecs-cluster/core
	waves [][]string
}

func newStory(t *testing.T, n int) story {
	t.Helper()
	p := message.ChangeDetected{ChangeSetID: wt.FixedID(n), Source: message.SourceGit, Components: []message.ComponentRef{},
		Files: []string{"iac/prod/vpc/core/config.json"}, Commit: &message.Commit{SHA: sha1, Author: gitActor.Name}}
	root := wt.FixedRoot(t, n, message.TypeChangeDetected, "", gitActor, "git:"+sha1, p)
	csID := root.ID + "/prod"
	return story{root: root, csID: csID, vpc: changeset.DeploymentID(csID, "prod/vpc/core"), ecs: changeset.DeploymentID(csID, "prod/ecs-cluster/core"),
		waves: [][]string{{"prod/vpc/core"}, {"prod/ecs-cluster/core", "prod/lambda/handlers"}, {"prod/ecs-service/api"}}}
}

func (s story) derive(t *testing.T, n int, typ, idem string, payload any) message.Envelope {
	t.Helper()
	e := wt.FixedDerive(t, s.root, n, typ, idem, payload)
	e.Env = "prod"
	return e
}

func (s story) resolved(t *testing.T, n int, rejected string) message.Envelope {
	p := message.ChangeResolved{ChangeSetID: s.csID, Source: message.SourceGit, Commit: sha1, RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: sha1}},
		Roots: []string{"prod/vpc/core"}, Affected: slices.Concat(s.waves...), Waves: s.waves, Rejected: rejected}
	if rejected != "" {
		p.Roots, p.Affected, p.Waves = []string{}, []string{}, [][]string{}
	}
	return s.derive(t, n, message.TypeChangeResolved, "resolved:"+s.csID, p)
}

func (s story) scheduled(t *testing.T, n int, component, dep string, wave int, causes ...message.Cause) message.Envelope {
	p := message.DeploymentScheduled{ChangeSetID: s.csID, DeploymentID: dep, Component: component, Wave: wave, CausedBy: causes,
		ConfigHash: strings.Repeat("c8", 32)}
	return s.derive(t, n, message.TypeDeploymentScheduled, "deployment.scheduled:"+dep, p)
}

func (s story) skipped(t *testing.T, n int, component, reason, detail string) message.Envelope {
	p := message.DeploymentSkipped{ChangeSetID: s.csID, Component: component, Reason: reason, Detail: detail}
	return s.derive(t, n, message.TypeDeploymentSkipped, "deployment.skipped:"+s.csID+"/"+component, p)
}

func (s story) applied(t *testing.T, n int, component, dep string, keys []string) message.Envelope {
	p := message.DeploymentApplied{ChangeSetID: s.csID, DeploymentID: dep, Component: component, RuntimeVersion: 4, ChangedKeys: keys,
		RuntimeHash: strings.Repeat("ab", 32)}
	return s.derive(t, n, message.TypeDeploymentApplied, "deployment.applied:"+dep, p)
}

func (s story) failed(t *testing.T, n int, component, dep string) message.Envelope {
	p := message.DeploymentFailed{ChangeSetID: s.csID, DeploymentID: dep, Component: component, Wave: 1, Stage: "plan", Error: "resolving references: vpc/core has no runtime yet"}
	return s.derive(t, n, message.TypeDeploymentFailed, "deployment.failed:"+dep, p)
}

func TestChangeResolvedRecordsTheChangeAndTheGraph(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name      string
		rejected  string
		wantGraph bool
	}{
		{"accepted", "", true},
		{"rejected", "iac/prod/app/a/config.json: error [cycle]: dependency cycle: prod/app/a -> prod/app/b -> prod/app/a", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t)
			st := newStory(t, 1+i)
			in := st.resolved(t, 10, tt.rejected)
			if out := s.handle(t, in); len(out) != 0 {
				t.Errorf("change.resolved produced %d messages, want none", len(out))
			}
			c, err := s.lineage.Change(ctx, st.csID)
			if err != nil {
				t.Fatal(err)
			}
			if c.Env != "prod" || c.CorrelationID != st.root.ID || c.Source != message.SourceGit || c.Actor != gitActor ||
				!c.At.Equal(in.OccurredAt) || c.Rejected != tt.rejected {
				t.Errorf("change %+v", c)
			}
			if !tt.wantGraph && len(c.Affected) != 0 {
				t.Errorf("rejected change affects %v", c.Affected)
			}
			if tt.wantGraph && !slices.Equal(c.Affected, slices.Concat(st.waves...)) {
				t.Errorf("affected %v", c.Affected)
			}
			byRoot, err := s.lineage.ChangesByRoot(ctx, message.CauseCommit, sha1)
			if err != nil || len(byRoot) != 1 || byRoot[0].ID != st.csID {
				t.Errorf("ChangesByRoot(commit, sha) = %+v, %v", byRoot, err)
			}
			g, err := s.graph.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var prod int
			for _, c := range g.Components {
				if c.Env == "prod" {
					prod++
				}
				if c.Env != "prod" {
					t.Errorf("graph delta wrote %s outside the change's env", c.ID)
				}
			}
			if want := map[bool]int{true: 8, false: 0}[tt.wantGraph]; prod != want {
				t.Errorf("graph store holds %d prod components, want %d", prod, want)
			}
			// Redelivery is an upsert.
			s.handle(t, in)
			if byRoot, _ := s.lineage.ChangesByRoot(ctx, message.CauseCommit, sha1); len(byRoot) != 1 {
				t.Errorf("redelivery recorded the change %d times", len(byRoot))
			}
		})
	}
}

func TestScheduledIsRecordedThenAnnounced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStage(t)
	st := newStory(t, 3)
	s.handle(t, st.resolved(t, 10, ""))
	root := message.Cause{Kind: message.CauseCommit, ID: sha1}
	up := message.Cause{Kind: message.CauseDeployment, ID: st.vpc, Keys: []string{"vpc_id"}}
	tests := []struct {
		name      string
		in        message.Envelope
		component string
		dep       string
		cause     message.Cause
	}{
		{"root", st.scheduled(t, 11, "prod/vpc/core", st.vpc, 0, root), "prod/vpc/core", st.vpc, root},
		{"dependent", st.scheduled(t, 12, "prod/ecs-cluster/core", st.ecs, 1, up), "prod/ecs-cluster/core", st.ecs, up},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := s.handle(t, tt.in)
			if len(out) != 1 || out[0].Type != message.TypeDeploymentRecorded {
				t.Fatalf("got %d messages, want one deployment.recorded", len(out))
			}
			rec := wt.PayloadOf[message.DeploymentRecorded](t, out[0])
			if sched := wt.PayloadOf[message.DeploymentScheduled](t, tt.in); !equalJSON(t, rec.DeploymentScheduled, sched) {
				t.Errorf("recorded payload %+v, want exactly the scheduled one %+v", rec, sched)
			}
			if out[0].IdempotencyKey != "deployment.recorded:"+tt.dep || out[0].CausationID != tt.in.ID || out[0].CorrelationID != st.root.ID || out[0].Env != "prod" {
				t.Errorf("envelope %+v", out[0])
			}
			d, err := s.lineage.Deployment(ctx, tt.dep)
			if err != nil {
				t.Fatal(err)
			}
			if d.Status != lineage.StatusScheduled || d.Component != tt.component || d.ChangeSetID != st.csID || d.Env != "prod" ||
				len(d.CausedBy) != 1 || d.CausedBy[0].ID != tt.cause.ID {
				t.Errorf("deployment %+v", d)
			}
			by, err := s.lineage.CausedBy(ctx, tt.cause.Kind, tt.cause.ID)
			if err != nil || len(by) != 1 || by[0].ID != tt.dep {
				t.Errorf("CausedBy(%s, %s) = %+v, %v", tt.cause.Kind, tt.cause.ID, by, err)
			}
			wt.CheckGolden(t, "recorded_"+tt.name, out, map[string]string{st.root.ID: "root", tt.in.ID: "scheduled"})
		})
	}
}

func TestOutcomesAndSkips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStage(t)
	st := newStory(t, 4)
	s.handle(t, st.resolved(t, 10, ""))
	s.handle(t, st.scheduled(t, 11, "prod/vpc/core", st.vpc, 0, message.Cause{Kind: message.CauseCommit, ID: sha1}))
	s.handle(t, st.scheduled(t, 12, "prod/ecs-cluster/core", st.ecs, 1, message.Cause{Kind: message.CauseDeployment, ID: st.vpc, Keys: []string{"vpc_id"}}))

	tests := []struct {
		name       string
		in         message.Envelope
		id         string // lineage deployment id
		wantStatus string
		wantDetail string
		wantKeys   []string
	}{
		{"applied", st.applied(t, 13, "prod/vpc/core", st.vpc, []string{"vpc_id"}), st.vpc, lineage.StatusApplied, "runtime version 4", []string{"vpc_id"}},
		{"skipped", st.skipped(t, 14, "prod/lambda/handlers", changeset.ReasonNoConsumedKey, "no runtime key it consumes changed upstream"),
			"skip-" + st.csID + "/prod/lambda/handlers", lineage.StatusSkipped, "no-consumed-key-changed: no runtime key it consumes changed upstream", nil},
		{"failed", st.failed(t, 15, "prod/ecs-cluster/core", st.ecs), st.ecs, lineage.StatusFailed, "plan: resolving references: vpc/core has no runtime yet", nil},
		{"blocked", st.skipped(t, 16, "prod/ecs-service/api", changeset.ReasonUpstreamFailed, "prod/ecs-cluster/core did not deploy"),
			"skip-" + st.csID + "/prod/ecs-service/api", lineage.StatusBlocked, "upstream-failed: prod/ecs-cluster/core did not deploy", nil},
		{"destroy held", st.skipped(t, 17, "prod/route53-zone/main", changeset.ReasonDestroyHeld, "config.json removed"),
			"skip-" + st.csID + "/prod/route53-zone/main", lineage.StatusSkipped, "destroy-held: config.json removed", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out := s.handle(t, tt.in); len(out) != 0 {
				t.Errorf("%s produced %d messages, want none", tt.in.Type, len(out))
			}
			d, err := s.lineage.Deployment(ctx, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if d.Status != tt.wantStatus || d.Detail != tt.wantDetail || !slices.Equal(d.ChangedKeys, tt.wantKeys) {
				t.Errorf("deployment %s: status %q detail %q keys %v; want %q %q %v", tt.id, d.Status, d.Detail, d.ChangedKeys, tt.wantStatus, tt.wantDetail, tt.wantKeys)
			}
			if d.ChangeSetID != st.csID || d.Env != "prod" {
				t.Errorf("deployment %+v", d)
			}
			// Redelivered: the same record.
			s.handle(t, tt.in)
			again, _ := s.lineage.Deployment(ctx, tt.id)
			if again.Status != d.Status || again.Detail != d.Detail {
				t.Errorf("redelivery changed the record: %+v", again)
			}
		})
	}

	// A redelivered deployment.scheduled after the outcome keeps the outcome and announces again.
	out := s.handle(t, st.scheduled(t, 11, "prod/vpc/core", st.vpc, 0, message.Cause{Kind: message.CauseCommit, ID: sha1}))
	if len(out) != 1 || out[0].IdempotencyKey != "deployment.recorded:"+st.vpc {
		t.Errorf("redelivered scheduled: %d messages", len(out))
	}
	if d, _ := s.lineage.Deployment(ctx, st.vpc); d.Status != lineage.StatusApplied {
		t.Errorf("redelivered scheduled overwrote the outcome: %+v", d)
	}
	if deps, err := s.lineage.Deployments(ctx, "prod/vpc/core"); err != nil || len(deps) != 1 {
		t.Errorf("prod/vpc/core has %d deployments, want 1 (%v)", len(deps), err)
	}
}

// A deployment whose outputs changed nothing (changed_keys empty) published no runtime version:
// its lineage says the runtime is unchanged, at the version it already had, rather than naming
// that version as if this deployment had written it.
func TestAppliedWithUnchangedOutputsSaysSo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStage(t)
	st := newStory(t, 4)
	s.handle(t, st.resolved(t, 10, ""))
	s.handle(t, st.scheduled(t, 11, "prod/vpc/core", st.vpc, 0, message.Cause{Kind: message.CauseCommit, ID: sha1}))
	s.handle(t, st.applied(t, 13, "prod/vpc/core", st.vpc, []string{}))
	d, err := s.lineage.Deployment(ctx, st.vpc)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != lineage.StatusApplied || d.Detail != "runtime unchanged: version 4" || len(d.ChangedKeys) != 0 {
		t.Errorf("deployment %s: status %q detail %q keys %v; want applied, \"runtime unchanged: version 4\", no keys", st.vpc, d.Status, d.Detail, d.ChangedKeys)
	}
}

func TestDriftIsRecordedInTheLineage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStage(t)
	karma := message.Actor{Kind: "karma", Name: "drift check"}
	p := message.DriftDetected{DriftID: "drift-4f1c9e20b7a35d68", Component: "prod/vpc/core", Kind: message.DriftConfig, Reason: message.DriftDiffers,
		Detail: "az_count differs", Commit: sha1, Parameter: &message.ParameterVersion{Name: "/iac/vpc/core/config", Version: 4},
		Expected: strings.Repeat("a", 64), Found: strings.Repeat("b", 64), Action: message.DriftCorrect, ChangeSetID: wt.FixedID(31)}
	in := wt.FixedRoot(t, 30, message.TypeDriftDetected, "prod", karma, "drift.detected:"+p.DriftID, p)
	if out := s.handle(t, in); len(out) != 0 {
		t.Errorf("drift.detected produced %d messages, want none", len(out))
	}
	s.handle(t, in) // redelivered: the same record
	ds, err := s.lineage.Drifts(ctx, "prod/vpc/core")
	if err != nil || len(ds) != 1 {
		t.Fatalf("drifts of prod/vpc/core: %+v, %v; want one", ds, err)
	}
	d := ds[0]
	if d.ID != p.DriftID || d.Env != "prod" || d.Kind != p.Kind || d.Reason != p.Reason || d.Detail != p.Detail || d.Commit != sha1 ||
		d.Parameter != "/iac/vpc/core/config@4" || d.Action != message.DriftCorrect || d.ChangeSetID != p.ChangeSetID ||
		d.Actor != karma || !d.At.Equal(in.OccurredAt) {
		t.Errorf("recorded %+v from %+v", d, p)
	}
}

func TestGraphWriteErrors(t *testing.T) {
	t.Parallel()
	s := newStage(t)
	st := newStory(t, 5)
	recorded := st.derive(t, 20, message.TypeDeploymentRecorded, "deployment.recorded:"+st.vpc,
		message.DeploymentRecorded{DeploymentScheduled: wt.PayloadOf[message.DeploymentScheduled](t, st.scheduled(t, 21, "prod/vpc/core", st.vpc, 0, message.Cause{Kind: message.CauseCommit, ID: sha1}))})
	bad := st.applied(t, 22, "prod/vpc/core", st.vpc, nil)
	bad.Payload = []byte(`{"deployment_id": 7}`)
	tests := []struct {
		name string
		in   message.Envelope
		want pipeline.Action
	}{
		{"a type graph-write does not consume", recorded, pipeline.DeadLetter},
		{"payload of the wrong shape", bad, pipeline.DeadLetter},
		// The outcome of a deployment whose scheduled message has not arrived yet: retried.
		{"outcome before its deployment", st.applied(t, 23, "prod/vpc/core", st.vpc, []string{}), pipeline.Retry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, action, err := wt.Process(t, s.q, s.w.Handle, tt.in)
			if action != tt.want || err == nil || len(out) != 0 {
				t.Errorf("action %v (%v), %d outputs; want %v", action, err, len(out), tt.want)
			}
		})
	}
	if _, err := s.w.Handle(context.Background(), recorded); !errors.As(err, new(*pipeline.PermanentError)) {
		t.Errorf("unexpected type: %v", err)
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}

// A change resolved at an older commit whose change.resolved is handled after a later one's (a
// retry, a queue's reordering) leaves the later commit's graph in the store: the graph is never
// put back to an older tree. A later commit is written as usual. Handled directly, and with both
// prepared before either is handled (one batch of a joined stage: Prepare saw neither write).
func TestAnOlderCommitDeliveredLateDoesNotRegressTheGraph(t *testing.T) {
	t.Parallel()
	gittest.Need(t)
	ctx := context.Background()
	origin := gittest.OriginFrom(t, "config.git", wt.ExamplesDir)
	a := origin.Head(t)
	b := origin.Commit(t, "a second vpc", map[string]string{"iac/prod/vpc/edge/config.json": `{"cidr": "10.30.0.0/16", "az_count": 2}`})
	c := origin.Commit(t, "a third vpc", map[string]string{"iac/prod/vpc/lab/config.json": `{"cidr": "10.40.0.0/16", "az_count": 2}`})
	for i, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			repo, err := gitrepo.OpenCache(filepath.Join(t.TempDir(), "cache"), gitrepo.Remote{URL: origin.Bare}, "")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { repo.Close() })
			s := newStage(t)
			s.w.Graphs = &configrepo.Source{Repo: repo, ModulesRoot: filepath.Join(t.TempDir(), "modules")}

			resolvedAt := func(n int, commit string) (message.Envelope, string) {
				p := message.ChangeDetected{ChangeSetID: wt.FixedID(n), Source: message.SourceGit, Components: []message.ComponentRef{},
					Files: []string{"iac/prod/vpc/core/config.json"}, Commit: &message.Commit{SHA: commit, Author: gitActor.Name}}
				root := wt.FixedRoot(t, n, message.TypeChangeDetected, "", gitActor, "git:"+commit, p)
				csID := root.ID + "/prod"
				r := message.ChangeResolved{ChangeSetID: csID, Source: message.SourceGit, Commit: commit,
					RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: commit}}, Roots: []string{}, Affected: []string{}, Waves: [][]string{}}
				e := wt.FixedDerive(t, root, n+1, message.TypeChangeResolved, "resolved:"+csID, r)
				e.Env = "prod"
				return e, csID
			}
			has := func(id string) bool {
				t.Helper()
				g, err := s.graph.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				_, ok := g.Index(id)
				return ok
			}
			base := 40 + 10*i
			inB, _ := resolvedAt(base, b)
			inA, csA := resolvedAt(base+2, a)
			inC, _ := resolvedAt(base+4, c)
			handle := func(in message.Envelope) {
				t.Helper()
				s.handle(t, in)
			}
			if batch {
				prepared := map[string]any{}
				for _, in := range []message.Envelope{inB, inA} {
					v, err := s.w.Prepare(ctx, in)
					if err != nil {
						t.Fatal(err)
					}
					prepared[in.ID] = v
				}
				h := s.w.Handle
				handle = func(in message.Envelope) {
					t.Helper()
					_, action, err := wt.Process(t, s.q, func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
						if v, ok := prepared[in.ID]; ok {
							ctx = pipeline.WithPrepared(ctx, v)
						}
						return h(ctx, in)
					}, in)
					if action != pipeline.Ack || err != nil {
						t.Fatalf("%s: action %v, err %v", in.Type, action, err)
					}
				}
			}

			handle(inB)
			if !has("prod/vpc/edge") {
				t.Fatal("the graph of the second commit lacks prod/vpc/edge")
			}
			handle(inA) // resolved first, handled last
			if !has("prod/vpc/edge") {
				t.Error("the graph of an older commit, handled late, replaced the newer one: prod/vpc/edge is gone")
			}
			if got, err := s.graph.Commit(ctx, "prod"); err != nil || got != b {
				t.Errorf("stored graph's commit = %q, %v; want %s", got, err, b)
			}
			if ch, err := s.lineage.Change(ctx, csA); err != nil || ch.Commit != a {
				t.Errorf("the late change is not recorded in the lineage: %+v, %v", ch, err)
			}
			handle(inC)
			if !has("prod/vpc/lab") || !has("prod/vpc/edge") {
				t.Error("a later commit's graph was not written")
			}
			if got, _ := s.graph.Commit(ctx, "prod"); got != c {
				t.Errorf("stored graph's commit = %q; want %s", got, c)
			}
		})
	}
}

// goneGraphs fails every build as a repository does for a commit a force-push removed.
type goneGraphs struct{ wt.RepoGraphs }

func (goneGraphs) Build(_ context.Context, _, commit string, _ map[string][]byte) (*model.Result, error) {
	return nil, fmt.Errorf("loading: %w", &gitrepo.CommitNotFoundError{Repo: "config.git", SHA: commit, Fetched: true})
}

// A change whose commit is gone by the time graph-write builds it is still recorded in the
// lineage (the change set exists and its deployments name it), and the message is dead-lettered
// at once naming the commit, not retried until it dies unrecorded: whether the build failed in
// Prepare (joined stages) or in Handle.
func TestChangeWhoseCommitIsGoneIsStillRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for i, viaPrepare := range []bool{false, true} {
		t.Run(fmt.Sprintf("prepare=%v", viaPrepare), func(t *testing.T) {
			t.Parallel()
			s := newStage(t)
			s.w.Graphs = goneGraphs{}
			st := newStory(t, 50+i)
			in := st.resolved(t, 10, "")
			h := s.w.Handle
			if viaPrepare {
				prepared, err := s.w.Prepare(ctx, in)
				if err != nil {
					t.Fatalf("Prepare failed the message (%v): Handle would never record the change", err)
				}
				h = func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
					return s.w.Handle(pipeline.WithPrepared(ctx, prepared), in)
				}
			}
			_, action, err := wt.Process(t, s.q, h, in)
			if action != pipeline.DeadLetter || err == nil || !strings.Contains(err.Error(), sha1) {
				t.Errorf("action %v (%v); want a dead letter naming commit %s", action, err, sha1)
			}
			if c, err := s.lineage.Change(ctx, st.csID); err != nil || c.Commit != sha1 {
				t.Errorf("change %s not recorded: %+v, %v", st.csID, c, err)
			}
		})
	}
}

// A change set rejected (or expired) while a deployment of it is scheduled — its plan held for
// review — never runs that deployment: the deployment's record says so (skipped, with the
// rejection), not scheduled for ever. Another change set's deployment of the component, and a
// skip of a component never scheduled, are left as they are.
func TestARejectionSettlesTheScheduledDeployment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStage(t)
	st, other := newStory(t, 60), newStory(t, 61)
	root := message.Cause{Kind: message.CauseCommit, ID: sha1}
	s.handle(t, st.resolved(t, 10, ""))
	s.handle(t, other.resolved(t, 10, ""))
	s.handle(t, st.scheduled(t, 11, "prod/vpc/core", st.vpc, 0, root))
	s.handle(t, other.scheduled(t, 11, "prod/vpc/core", other.vpc, 0, root))
	for _, in := range []message.Envelope{
		st.skipped(t, 12, "prod/vpc/core", changeset.ReasonRejected, "rejected by linus: not on a Friday"),
		st.skipped(t, 13, "prod/ecs-cluster/core", changeset.ReasonRejected, "rejected by linus: not on a Friday"),
	} {
		s.handle(t, in)
	}
	d, err := s.lineage.Deployment(ctx, st.vpc)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != lineage.StatusSkipped || d.Detail != "rejected: rejected by linus: not on a Friday" || len(d.CausedBy) != 1 {
		t.Errorf("the rejected change set's scheduled deployment: %+v; want skipped with the rejection, its cause kept", d)
	}
	if d, _ := s.lineage.Deployment(ctx, other.vpc); d.Status != lineage.StatusScheduled {
		t.Errorf("another change set's deployment of the component: %+v; want it still scheduled", d)
	}
	if ds, err := s.lineage.Deployments(ctx, "prod/ecs-cluster/core"); err != nil || len(ds) != 1 || ds[0].Status != lineage.StatusSkipped {
		t.Errorf("records of a component never scheduled: %+v, %v; want its one skip", ds, err)
	}
}

// A change set superseded while a deployment of it is scheduled — its plan held for review
// (changeset.Supersede skips planned nodes) — never runs that deployment either: its record says
// so (skipped, with the supersession), not scheduled for ever.
func TestASupersessionSettlesTheScheduledDeployment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStage(t)
	st := newStory(t, 62)
	root := message.Cause{Kind: message.CauseCommit, ID: sha1}
	s.handle(t, st.resolved(t, 10, ""))
	s.handle(t, st.scheduled(t, 11, "prod/vpc/core", st.vpc, 0, root))
	detail := "superseded by change cs-later (commit abc, asked by grace)"
	s.handle(t, st.skipped(t, 12, "prod/vpc/core", changeset.ReasonSuperseded, detail))
	d, err := s.lineage.Deployment(ctx, st.vpc)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != lineage.StatusSkipped || d.Detail != "superseded: "+detail || len(d.CausedBy) != 1 {
		t.Errorf("the superseded change set's scheduled deployment: %+v; want skipped with the supersession, its cause kept", d)
	}
}
