package changeset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/message"
)

// memStore is a Store in memory: Update works on a copy and stores it unless fn fails, as the
// real stores do.
type memStore struct {
	mu  sync.Mutex
	all map[string][]byte
}

var _ Store = (*memStore)(nil)

func (m *memStore) Create(_ context.Context, cs *ChangeSet) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.all == nil {
		m.all = map[string][]byte{}
	}
	if _, ok := m.all[cs.ID]; ok {
		return false, nil
	}
	m.all[cs.ID], _ = json.Marshal(cs)
	return true, nil
}

func (m *memStore) Get(_ context.Context, id string) (*ChangeSet, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.all[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	var cs ChangeSet
	return &cs, json.Unmarshal(b, &cs)
}

func (m *memStore) Update(ctx context.Context, id string, fn func(*ChangeSet) error) (*ChangeSet, error) {
	cs, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := fn(cs); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.all[id], _ = json.Marshal(cs)
	return cs, nil
}

func (m *memStore) List(context.Context) ([]*ChangeSet, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*ChangeSet
	for _, b := range m.all {
		var cs ChangeSet
		if err := json.Unmarshal(b, &cs); err != nil {
			return nil, err
		}
		out = append(out, &cs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) }) // newest first
	return out, nil
}

// held: vpc planned and held for review, cluster and lambda pending behind it.
func held(t *testing.T, st *memStore) *ChangeSet {
	t.Helper()
	cs := diamond()
	cs.CorrelationID, cs.Env = "019cebab-87be-76cd-9c22-2d20c23174d0", "prod"
	cs.Actor = message.Actor{Kind: "git", Name: "Ada <ada@example.com>"}
	cs.Start()
	vpc := cs.Nodes["vpc"]
	vpc.State, vpc.PlanMessageID = Planned, "019cebac-45cc-7c5c-b96b-7eb35c876c19"
	vpc.Plan = &message.DeploymentPlanned{DeploymentScheduled: message.DeploymentScheduled{ChangeSetID: cs.ID, DeploymentID: vpc.DeploymentID, Component: "vpc"}}
	if _, err := st.Create(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestApproveReleasesHeldPlans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &memStore{}
	cs := held(t, st)
	a, err := Approve(ctx, st, cs.ID, "grace")
	if err != nil {
		t.Fatal(err)
	}
	if a.Already || !a.ChangeSet.Approved || a.ChangeSet.ApprovedBy != "grace" || len(a.Messages) != 1 {
		t.Fatalf("approval = %+v", a)
	}
	m := a.Messages[0]
	var p message.DeploymentApproved
	if err := message.Decode(m, &p); err != nil {
		t.Fatal(err)
	}
	if m.Type != message.TypeDeploymentApproved || m.IdempotencyKey != message.ApprovalKey(*cs.Nodes["vpc"].Plan) ||
		m.CorrelationID != cs.CorrelationID || m.CausationID != cs.Nodes["vpc"].PlanMessageID || m.Actor != cs.Actor || m.Env != "prod" ||
		p.ApprovedBy != "grace" || p.Component != "vpc" {
		t.Errorf("deployment.approved = %+v, payload %+v", m, p)
	}
	if got, _ := st.Get(ctx, cs.ID); got.Nodes["vpc"].State != Scheduled {
		t.Errorf("released plan state %s, want %s", got.Nodes["vpc"].State, Scheduled)
	}

	// Approving again (a retry after a failed publish) announces the same, keeps the approver.
	again, err := Approve(ctx, st, cs.ID, "linus")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Already || again.ChangeSet.ApprovedBy != "grace" || len(again.Messages) != 1 || again.Messages[0].IdempotencyKey != m.IdempotencyKey {
		t.Errorf("second approval = %+v", again)
	}
}

func TestApproveRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, mutate := range map[string]func(*ChangeSet){
		"invalid":    func(cs *ChangeSet) { cs.Rejected = "cycle" },
		"rejected":   func(cs *ChangeSet) { cs.RejectedBy, cs.RejectReason = "linus", "no" },
		"superseded": func(cs *ChangeSet) { cs.SupersededBy = "later" },
		"done": func(cs *ChangeSet) {
			for _, n := range cs.Nodes {
				n.State = Skipped
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			st := &memStore{}
			cs := held(t, st)
			st.Update(ctx, cs.ID, func(cs *ChangeSet) error { mutate(cs); return nil })
			if _, err := Approve(ctx, st, cs.ID, "grace"); !errors.Is(err, ErrCannotApprove) {
				t.Fatalf("Approve = %v, want ErrCannotApprove", err)
			}
			if got, _ := st.Get(ctx, cs.ID); got.Approved {
				t.Error("refused, yet approved")
			}
		})
	}
	if _, err := Approve(ctx, &memStore{}, "nope", "grace"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown change set: %v", err)
	}
}

func TestRejectSkipsWhatIsLeft(t *testing.T) {
	t.Parallel()
	cs := diamond()
	cs.Start()
	cs.MarkApplied("vpc", []string{"vpc_id", "subnets"}) // cluster, lambda scheduled (being planned)
	cs.Nodes["lambda"].State = Planned                   // lambda's plan held for review
	if err := cs.SkipRejected(); !errors.Is(err, ErrCannotReject) {
		t.Errorf("SkipRejected without a recorded rejection = %v", err)
	}
	if err := cs.Reject("linus", "wrong account"); err != nil {
		t.Fatal(err)
	}
	if err := cs.Reject("grace", "me too"); !errors.Is(err, ErrCannotReject) {
		t.Errorf("a second person rejecting = %v, want ErrCannotReject", err)
	}
	if err := cs.Reject("linus", "again"); err != nil || cs.RejectReason != "wrong account" {
		t.Errorf("the same person again = %v, reason %q", err, cs.RejectReason)
	}
	if err := cs.CanBeApproved(); !errors.Is(err, ErrCannotApprove) {
		t.Errorf("a rejected change set can be approved: %v", err)
	}
	if err := cs.SkipRejected(); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"vpc": Applied, "cluster": Skipped, "lambda": Skipped, "service": Skipped, "api": Skipped} {
		n := cs.Nodes[id]
		if n.State != want {
			t.Errorf("%s: %s, want %s", id, n.State, want)
		}
		if want == Skipped && (n.Reason != ReasonRejected || n.Detail != "rejected by linus: wrong account" || n.Plan != nil) {
			t.Errorf("%s: %+v", id, n)
		}
	}
	if !cs.Done() || len(cs.Unannounced()) != 4 {
		t.Errorf("done %v, %d decisions to announce", cs.Done(), len(cs.Unannounced()))
	}
}

func TestRejectRefuses(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func(*ChangeSet){
		"approved":   func(cs *ChangeSet) { cs.Approved, cs.ApprovedBy = true, "grace" },
		"invalid":    func(cs *ChangeSet) { cs.Rejected = "cycle" },
		"superseded": func(cs *ChangeSet) { cs.SupersededBy = "later" },
		"done": func(cs *ChangeSet) {
			for _, n := range cs.Nodes {
				n.State = Applied
			}
		},
	} {
		cs := diamond()
		mutate(cs)
		if err := cs.Reject("linus", "no"); !errors.Is(err, ErrCannotReject) || cs.RejectedBy != "" {
			t.Errorf("%s: Reject = %v, rejected by %q", name, err, cs.RejectedBy)
		}
	}
}

// A decision names who takes it: an approval or a rejection by an empty name (karma apply or
// karma reject --as "") is refused, nothing recorded. Before, the approval was counted as a
// person's — passing separation of duties, since an empty name is nobody's — and the rejection
// recorded nothing in the change set (it could still be approved) while its caller published
// change.rejected and audited a rejection that did not happen.
func TestDecisionsByNobodyAreRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, nobody := range []string{"", "  "} {
		st := &memStore{}
		cs := held(t, st)
		if _, err := ApproveAt(ctx, st, cs.ID, nobody, g0); !errors.Is(err, ErrCannotApprove) {
			t.Errorf("approval by %q = %v, want ErrCannotApprove", nobody, err)
		}
		if got, _ := st.Get(ctx, cs.ID); got.Approved || len(got.Approvals) != 0 || got.Nodes["vpc"].State != Planned {
			t.Errorf("approval by %q refused, yet approved %v by %+v", nobody, got.Approved, got.Approvals)
		}
		st = &memStore{}
		cs = held(t, st)
		if _, _, err := RejectChange(ctx, st, cs.ID, message.Actor{Kind: "cli", Name: nobody}, "wrong account"); !errors.Is(err, ErrCannotReject) {
			t.Errorf("rejection by %q = %v, want ErrCannotReject", nobody, err)
		}
		if got, _ := st.Get(ctx, cs.ID); got.RejectReason != "" || got.RejectedBy != "" {
			t.Errorf("rejection by %q refused, yet recorded: %q", nobody, got.RejectReason)
		}
	}
}

// An approval naming the plans its approver read (ApproveSeenAt) is refused while a deployment
// of the change set is still being planned: approved, its plan would be applied as soon as it is
// made, read by nobody. Once its plan is held and read, the approval is given.
func TestApproveSeenWaitsForThePlansBeingMade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &memStore{}
	cs := held(t, st)
	if _, err := st.Update(ctx, cs.ID, func(cs *ChangeSet) error {
		cs.Waves[0] = append(cs.Waves[0], "dns")
		cs.Nodes["dns"] = &Node{Component: "dns", Wave: 0, Root: true, State: Scheduled, DeploymentID: DeploymentID(cs.ID, "dns")}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{"vpc": cs.Nodes["vpc"].Plan.PlanHash}
	_, err := ApproveSeenAt(ctx, st, cs.ID, "grace", g0, seen)
	if !errors.Is(err, ErrPlansChanged) || !strings.Contains(err.Error(), "dns is still being planned") {
		t.Fatalf("approval while dns is planned: %v, want ErrPlansChanged naming dns", err)
	}
	if got, _ := st.Get(ctx, cs.ID); got.Approved || len(got.Approvals) != 0 {
		t.Fatalf("the refused approval was recorded: %+v", got.Approvals)
	}

	plan := &message.DeploymentPlanned{DeploymentScheduled: message.DeploymentScheduled{ChangeSetID: cs.ID, DeploymentID: DeploymentID(cs.ID, "dns"), Component: "dns"},
		PlanHash: strings.Repeat("d", 64)}
	if _, err := st.Update(ctx, cs.ID, func(cs *ChangeSet) error {
		cs.Nodes["dns"].State, cs.Nodes["dns"].Plan = Planned, plan
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	seen["dns"] = plan.PlanHash
	a, err := ApproveSeenAt(ctx, st, cs.ID, "grace", g0, seen)
	if err != nil || !a.ChangeSet.Approved || len(a.Messages) != 2 {
		t.Fatalf("approval of the plans read: %v, %+v", err, a)
	}
}

// A plan's deployment is over once its node settled or was run again under another deployment;
// a plan of a node still waiting, or of a change set that cannot be read, is not.
func TestPlanSpent(t *testing.T) {
	ctx := context.Background()
	m := &memStore{}
	nodes := map[string]*Node{}
	for state, dep := range map[string]string{Scheduled: "dep-s", Planned: "dep-p", Applied: "dep-a", Failed: "dep-f", Skipped: "dep-k", Blocked: "dep-b"} {
		nodes["prod/"+state+"/x"] = &Node{Component: "prod/" + state + "/x", State: state, DeploymentID: dep}
	}
	if _, err := m.Create(ctx, &ChangeSet{ID: "cs-1", Env: "prod", Nodes: nodes}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cs, component, dep string
		want               bool
	}{
		{"cs-1", "prod/" + Scheduled + "/x", "dep-s", false},
		{"cs-1", "prod/" + Planned + "/x", "dep-p", false},
		{"cs-1", "prod/" + Planned + "/x", "dep-old", true}, // run again since
		{"cs-1", "prod/" + Applied + "/x", "dep-a", true},
		{"cs-1", "prod/" + Failed + "/x", "dep-f", true},
		{"cs-1", "prod/" + Skipped + "/x", "dep-k", true},
		{"cs-1", "prod/" + Blocked + "/x", "dep-b", true},
		{"cs-1", "prod/other/x", "dep-s", false},
		{"cs-unknown", "prod/" + Skipped + "/x", "dep-k", false},
	} {
		if got := PlanSpent(ctx, m, tc.cs, tc.component, tc.dep); got != tc.want {
			t.Errorf("PlanSpent(%s, %s, %s) = %v, want %v", tc.cs, tc.component, tc.dep, got, tc.want)
		}
	}
}
