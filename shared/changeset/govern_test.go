package changeset

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/governance"
	"github.com/usekarma/karma/shared/message"
)

var g0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

// prodRules: protected, two approvals, 72h to get them; ada's names mapped.
func prodRules() governance.Rules {
	return governance.Rules{Configured: true, Environment: governance.Environment{Protected: true, Approvals: 2, ApprovalExpiry: governance.Duration(72 * time.Hour)},
		Identities: governance.Identities{"ada": {"Ada Lovelace <ada@example.com>", "arn:aws:iam::210987654321:user/ada"}}}
}

func TestGovernDowngradesAutoApproveWhereProtected(t *testing.T) {
	t.Parallel()
	cs := diamond()
	cs.Env, cs.CreatedAt, cs.AutoApprove, cs.Approved, cs.ApprovedBy = "prod", g0, true, true, "auto-approve"
	cs.Govern(prodRules(), "Ada Lovelace <ada@example.com>")
	if cs.AutoApprove || cs.Approved || cs.ApprovedBy != "" || !strings.Contains(cs.AutoApproveRefused, "environment prod is protected") {
		t.Errorf("auto-approve in a protected environment: auto %v approved %v by %q, refused %q", cs.AutoApprove, cs.Approved, cs.ApprovedBy, cs.AutoApproveRefused)
	}
	if !cs.ExpiresAt.Equal(g0.Add(72*time.Hour)) || cs.Author != "Ada Lovelace <ada@example.com>" || cs.Required() != 2 {
		t.Errorf("expires %v, author %q, required %d", cs.ExpiresAt, cs.Author, cs.Required())
	}

	sandbox := diamond()
	sandbox.Env, sandbox.CreatedAt = "sandbox", g0
	sandbox.Govern(governance.Rules{Configured: true, Environment: governance.Environment{AutoApprove: governance.AutoApproveAlways, ApprovalExpiry: governance.Duration(time.Hour)}}, "")
	if !sandbox.Approved || !sandbox.AutoApprove || !sandbox.ExpiresAt.IsZero() || !strings.Contains(sandbox.ApprovedBy, "approves every change") {
		t.Errorf("an environment that always auto-approves: %+v", sandbox)
	}
	plain := diamond()
	plain.AutoApprove, plain.Approved = true, true
	plain.Govern(governance.Rules{}, "")
	if !plain.Approved || plain.AutoApproveRefused != "" {
		t.Error("an environment without rules must keep auto-approve as asked")
	}
}

// governed: a change set of prod requested by the API caller "ci" from Ada's commit, vpc's plan held.
func governed(t *testing.T, st *memStore) *ChangeSet {
	t.Helper()
	cs, err := st.Update(context.Background(), held(t, st).ID, func(cs *ChangeSet) error {
		cs.Actor, cs.CreatedAt = message.Actor{Kind: "api", Name: "ci"}, g0
		cs.Govern(prodRules(), "Ada Lovelace <ada@example.com>")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestSeparationOfDutiesAndDistinctApprovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &memStore{}
	cs := governed(t, st)
	now := g0.Add(time.Hour)
	for who, role := range map[string]string{"ci": RoleRequester, "CI": RoleRequester, "ada@example.com": RoleAuthor, "arn:aws:iam::210987654321:user/ada": RoleAuthor} {
		_, err := ApproveAt(ctx, st, cs.ID, who, now)
		var ie *IneligibleError
		if !errors.As(err, &ie) || !errors.Is(err, ErrIneligible) || ie.Role != role || ie.Approver != who {
			t.Errorf("%s approving: %v, want ineligible as %s", who, err, role)
		}
	}
	a, err := ApproveAt(ctx, st, cs.ID, "grace", now)
	if err != nil || !a.Counted || a.Pending != 1 || len(a.Messages) != 0 || a.ChangeSet.Approved {
		t.Fatalf("first approval: %+v, %v", a, err)
	}
	a, err = ApproveAt(ctx, st, cs.ID, "Grace", now) // the same person again: counted once
	if err != nil || a.Counted || a.Pending != 1 || a.ChangeSet.Approved {
		t.Fatalf("the same approver again: %+v, %v", a, err)
	}
	a, err = ApproveAt(ctx, st, cs.ID, "linus", now.Add(time.Minute))
	if err != nil || !a.Counted || a.Pending != 0 || !a.ChangeSet.Approved || a.ChangeSet.ApprovedBy != "grace, linus" || len(a.Messages) != 1 {
		t.Fatalf("second approval: %+v, %v", a, err)
	}
	var p message.DeploymentApproved
	if err := message.Decode(a.Messages[0], &p); err != nil || p.ApprovedBy != "grace, linus" {
		t.Errorf("deployment.approved approved_by %q, %v", p.ApprovedBy, err)
	}
	if got := a.ChangeSet.Approvals; len(got) != 2 || got[0].Person != "name:grace" || !got[1].At.Equal(now.Add(time.Minute)) {
		t.Errorf("approvals = %+v", got)
	}
}

func TestUnprotectedEnvironmentsLetAnyoneApprove(t *testing.T) {
	t.Parallel()
	st := &memStore{}
	cs := held(t, st)
	st.Update(context.Background(), cs.ID, func(cs *ChangeSet) error { cs.Govern(governance.Rules{}, cs.Actor.Name); return nil })
	if a, err := ApproveAt(context.Background(), st, cs.ID, cs.Actor.Name, g0); err != nil || !a.ChangeSet.Approved {
		t.Errorf("the author approving in an unprotected environment: %+v, %v", a, err)
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &memStore{}
	cs := governed(t, st)
	ApproveAt(ctx, st, cs.ID, "grace", g0.Add(time.Hour))
	late := g0.Add(72 * time.Hour)
	if _, err := ApproveAt(ctx, st, cs.ID, "linus", late); !errors.Is(err, ErrCannotApprove) || !strings.Contains(err.Error(), "expired at 2026-12-03T10:00:00Z") {
		t.Errorf("approving past the expiry: %v", err)
	}
	got, _ := st.Get(ctx, cs.ID)
	if !got.Expirable(late) || got.Expirable(late.Add(-time.Second)) {
		t.Errorf("expirable at %v: %v", late, got.Expirable(late))
	}
	if err := got.Expire(late.Add(-time.Second)); !errors.Is(err, ErrCannotExpire) {
		t.Errorf("expiring early: %v", err)
	}
	if err := got.Expire(late); err != nil {
		t.Fatal(err)
	}
	for id, n := range got.Nodes {
		if n.State != Skipped || n.Reason != ReasonExpired || !strings.Contains(n.Detail, "not approved within 72h0m0s (1 approval of 2 needed)") {
			t.Errorf("%s: %+v", id, n)
		}
	}
	if !got.Done() || got.Expirable(late) || got.CanBeApproved() == nil || len(got.Unannounced()) != len(got.Nodes) {
		t.Errorf("expired change set: done %v, approvable %v", got.Done(), got.CanBeApproved())
	}

	approved := governed(t, &memStore{})
	approved.Approved, approved.ApprovedBy = true, "grace, linus"
	if err := approved.Expire(late); !errors.Is(err, ErrCannotExpire) || !strings.Contains(err.Error(), "approved (by grace, linus) before it expired") || approved.Expirable(late) {
		t.Errorf("a change set approved in time expired: %v", err)
	}
}

// A pushed change: neither its pusher nor the author of any commit of its push may approve it,
// even when the head commit is someone else's (Bob's trivial commit on top of Alice's).
func TestPusherAndEveryAuthorOfThePushAreIneligible(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &memStore{}
	cs, err := st.Update(ctx, held(t, st).ID, func(cs *ChangeSet) error {
		cs.Actor, cs.CreatedAt = message.Actor{Kind: "git", Name: "Bob <bob@example.com>"}, g0
		cs.Govern(prodRules(), "Bob <bob@example.com>")
		cs.Pusher, cs.PushAuthors = "octo-carol", []string{"Alice <alice@example.com>", "Bob <bob@example.com>"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now := g0.Add(time.Hour)
	for who, role := range map[string]string{"alice@example.com": RolePushAuthor, "Alice Liddell <ALICE@example.com>": RolePushAuthor,
		"octo-carol": RolePusher, "bob@example.com": RoleRequester} {
		_, err := ApproveAt(ctx, st, cs.ID, who, now)
		var ie *IneligibleError
		if !errors.As(err, &ie) || ie.Role != role {
			t.Errorf("%s approving: %v, want ineligible as %s", who, err, role)
		}
	}
	if _, err := ApproveAt(ctx, st, cs.ID, "grace", now); err != nil {
		t.Errorf("grace, who has nothing to do with the push: %v", err)
	}
}

// An auto-approved change set of an environment with an approval expiry, whose approval a
// policy withdraws (a plan destroys, a policy asks for people): it waits for people no longer
// than the expiry, counted from the withdrawal — not forever, and not expiring at once when the
// withdrawal comes late (its other deployments, released by the auto-approval, may be applying).
func TestApprovalAPolicyAsksForExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &memStore{}
	withdrawn := g0.Add(48 * time.Hour) // the change set waited in its queue; the apply stage polices the plan
	cs, err := st.Update(ctx, held(t, st).ID, func(cs *ChangeSet) error {
		cs.CreatedAt, cs.AutoApprove, cs.Approved, cs.ApprovedBy = g0, true, true, "auto-approve"
		cs.Govern(governance.Rules{Configured: true, Environment: governance.Environment{ApprovalExpiry: governance.Duration(24 * time.Hour)}}, "")
		if !cs.ExpiresAt.IsZero() {
			t.Fatalf("an auto-approved change set expires at %v", cs.ExpiresAt)
		}
		if !cs.RequireApprovalAt("the plan of vpc destroys 1 resource(s)", withdrawn) {
			t.Fatal("the auto-approval was not withdrawn")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := withdrawn.Add(24 * time.Hour); !cs.ExpiresAt.Equal(want) {
		t.Errorf("a change set waiting for people under a 24h approval expiry expires at %v, want %v", cs.ExpiresAt, want)
	}
	if cs.Expirable(withdrawn.Add(time.Minute)) {
		t.Error("expirable as soon as its approval was withdrawn")
	}
	late := withdrawn.Add(30 * 24 * time.Hour)
	if _, err := ApproveAt(ctx, st, cs.ID, "grace", late); !errors.Is(err, ErrCannotApprove) {
		t.Errorf("approved a month after its environment's 24h approval expiry: %v", err)
	}
	msgs, err := Sweep(ctx, st, func() time.Time { return late })
	if err != nil || len(msgs) != 1 {
		t.Errorf("the sweep a month later: %d change.expired, %v; want 1", len(msgs), err)
	}
}

// A change.expired the sweep published while the change set was still waiting, carried out only
// after the change set ended otherwise — a person rejected it, or it failed: the expiry is not
// recorded (the change set did not expire: it was rejected, or it failed), and what the
// rejection is to skip is left for it, so the lineage names who rejected it and why.
func TestExpiryOfAChangeSetThatEndedOtherwiseIsRefused(t *testing.T) {
	t.Parallel()
	late := g0.Add(73 * time.Hour)

	rejected := governed(t, &memStore{})
	if !rejected.Expirable(late) {
		t.Fatal("the change set must be expirable when the sweep looks")
	}
	if err := rejected.Reject("grace", "wrong CIDR"); err != nil {
		t.Fatal(err)
	}
	if err := rejected.Expire(late); !errors.Is(err, ErrCannotExpire) {
		t.Errorf("expiring a rejected change set: %v, want ErrCannotExpire", err)
	}
	if !rejected.ExpiredAt.IsZero() {
		t.Errorf("a rejected change set recorded as expired at %v", rejected.ExpiredAt)
	}
	if err := rejected.SkipRejected(); err != nil {
		t.Fatal(err)
	}
	for id, n := range rejected.Nodes {
		if n.State != Skipped || n.Reason != ReasonRejected || !strings.Contains(n.Detail, "rejected by grace: wrong CIDR") {
			t.Errorf("%s: %+v, want skipped as rejected by grace", id, n)
		}
	}

	failed := governed(t, &memStore{})
	if err := failed.MarkFailed("vpc", "plan: boom"); err != nil {
		t.Fatal(err)
	}
	if !failed.Done() {
		t.Fatal("a failed root must end the change set")
	}
	if err := failed.Expire(late); !errors.Is(err, ErrCannotExpire) || !failed.ExpiredAt.IsZero() {
		t.Errorf("expiring a change set that failed before the expiry was carried out: %v, expired at %v", err, failed.ExpiredAt)
	}
}

// A change set approved in time whose approval is withdrawn later — a plan made again after it
// went stale, a failure run again (karma retry) — past its expiry: the new plans wait for people
// a whole approval expiry again, counted from the withdrawal. Before, it was expirable at once
// ("not approved within 72h", which it was), so its new plans could never be approved and the
// sweep skipped the deployments its approval had released, some possibly applying.
func TestWithdrawnApprovalWaitsAFreshExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &memStore{}
	cs := governed(t, st)
	for _, who := range []string{"grace", "linus"} {
		if _, err := ApproveAt(ctx, st, cs.ID, who, g0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	withdrawn := g0.Add(100 * time.Hour) // past the 72h expiry
	cs, err := st.Update(ctx, cs.ID, func(cs *ChangeSet) error {
		if !cs.Approved {
			t.Fatal("not approved by two people in time")
		}
		cs.WithdrawApprovalAt(withdrawn)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := withdrawn.Add(72 * time.Hour); !cs.ExpiresAt.Equal(want) || cs.Approved || len(cs.Approvals) != 0 {
		t.Errorf("withdrawn: expires %v (want %v), approved %v by %v", cs.ExpiresAt, want, cs.Approved, cs.Approvals)
	}
	if cs.Expirable(withdrawn.Add(time.Minute)) {
		t.Error("expirable as soon as its approval was withdrawn")
	}
	if a, err := ApproveAt(ctx, st, cs.ID, "grace", withdrawn.Add(time.Hour)); err != nil || !a.Counted {
		t.Errorf("approving the new plan an hour after the withdrawal: %+v, %v", a, err)
	}
	if !cs.Expirable(withdrawn.Add(72 * time.Hour)) {
		t.Error("not expirable a whole approval expiry after the withdrawal")
	}
}
