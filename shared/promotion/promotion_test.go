package promotion

import (
	"context"
	"errors"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/message/messagetest"
)

var t0 = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)

const (
	root = "019cebab-87be-7000-8000-000000000001"
	sha  = "512423cb3a4857a38f472862b51e4ab1a1730f06"
)

// changeSet is the change's change set in env with one node in state.
func changeSet(env, state string) *changeset.ChangeSet {
	id := root + "/" + env
	n := &changeset.Node{Component: env + "/vpc/core", State: state, DeploymentID: changeset.DeploymentID(id, env+"/vpc/core")}
	return &changeset.ChangeSet{ID: id, Env: env, CorrelationID: root, Source: message.SourceGit, Commit: sha, Started: true,
		Actor: message.Actor{Kind: "git", Name: "Ada <ada@example.com>"}, Nodes: map[string]*changeset.Node{n.Component: n},
		Waves: [][]string{{n.Component}}}
}

// dev → qa → prod; dev applied at t0 with a soak of 10m.
func devApplied() *changeset.ChangeSet {
	dev := changeSet("dev", changeset.Applied)
	dev.Promotion = &changeset.Promotion{Next: "qa", Then: []string{"prod"}, Soak: 10 * time.Minute, Files: []string{"components/vpc/main.tf"},
		Commit: &message.Commit{SHA: sha, Author: "Ada <ada@example.com>"}, AutoApprove: true}
	dev.SettlePromotion(t0)
	return dev
}

func states(r Report) []string {
	var out []string
	for _, s := range r.Steps {
		out = append(out, s.Env+":"+s.State)
	}
	return out
}

func TestStatusFollowsTheChange(t *testing.T) {
	t.Parallel()
	dev := devApplied()
	qaPlanned := changeSet("qa", changeset.Planned)
	qaPlanned.PromotedFrom = dev.ID
	qaPlanned.Promotion = &changeset.Promotion{Next: "prod"}
	qaFailed := changeSet("qa", changeset.Failed)
	qaFailed.Nodes["qa/vpc/core"].Detail = "apply: boom\ndetail"
	qaFailed.Promotion = &changeset.Promotion{Next: "prod"}
	promoted := devApplied()
	promoted.MarkPromoted(t0.Add(10 * time.Minute))
	prodDone := changeSet("prod", changeset.Applied)
	qaDone := changeSet("qa", changeset.Applied)
	qaDone.Promotion = &changeset.Promotion{Next: "prod"}
	qaDone.SettlePromotion(t0)
	qaDone.MarkPromoted(t0)

	for _, c := range []struct {
		name    string
		all     []*changeset.ChangeSet
		now     time.Time
		want    []string
		at      int
		stopped string
	}{
		{"soaking in dev", []*changeset.ChangeSet{dev}, t0.Add(time.Minute), []string{"dev:soaking", "qa:waiting", "prod:waiting"}, 0, ""},
		{"the soak is over", []*changeset.ChangeSet{dev}, t0.Add(10 * time.Minute), []string{"dev:due", "qa:waiting", "prod:waiting"}, 0, ""},
		{"promoted, not resolved yet", []*changeset.ChangeSet{promoted}, t0.Add(11 * time.Minute), []string{"dev:applied", "qa:starting", "prod:waiting"}, 1, ""},
		{"waiting for qa's approval", []*changeset.ChangeSet{qaPlanned, promoted}, t0.Add(time.Hour), []string{"dev:applied", "qa:approval", "prod:waiting"}, 1, ""},
		{"stopped in qa", []*changeset.ChangeSet{qaFailed, promoted}, t0.Add(time.Hour), []string{"dev:applied", "qa:stopped", "prod:not reached"}, 1,
			"in qa: qa/vpc/core failed (" + qaFailed.Nodes["qa/vpc/core"].DeploymentID + "): apply: boom"},
		{"complete", []*changeset.ChangeSet{prodDone, qaDone, promoted}, t0.Add(time.Hour), []string{"dev:applied", "qa:applied", "prod:applied"}, 2, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := Status(c.all, root, c.now)
			if err != nil {
				t.Fatal(err)
			}
			if got := states(r); len(got) != len(c.want) || r.At != c.at || r.Stopped != c.stopped {
				t.Fatalf("steps %v at %d stopped %q; want %v at %d stopped %q", got, r.At, r.Stopped, c.want, c.at, c.stopped)
			}
			for i := range c.want {
				if states(r)[i] != c.want[i] {
					t.Errorf("steps %v, want %v", states(r), c.want)
				}
			}
			if r.Complete() != (c.name == "complete") {
				t.Errorf("complete %v", r.Complete())
			}
		})
	}
	r, _ := Status([]*changeset.ChangeSet{dev}, dev.ID, t0) // a change set's id names its change
	if s := r.Current(); s.State != StateSoaking || !s.Until.Equal(t0.Add(10*time.Minute)) || r.Change != root {
		t.Errorf("current %+v of %s", s, r.Change)
	}
	if _, err := Status([]*changeset.ChangeSet{dev}, "nope", t0); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown: %v", err)
	}
	if _, err := Status([]*changeset.ChangeSet{prodDone}, root, t0); !errors.Is(err, ErrNotPromoted) {
		t.Errorf("not promoted: %v", err)
	}
}

func TestNextContinuesTheChange(t *testing.T) {
	t.Parallel()
	dev := devApplied()
	if err := dev.SkipSoak("grace", "verified by hand", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	m, err := Next(dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	messagetest.Validate(t, m)
	var p message.ChangeDetected
	if err := message.Decode(m, &p); err != nil {
		t.Fatal(err)
	}
	if m.Env != "qa" || m.CorrelationID != root || m.CausationID != root || m.IdempotencyKey != "promotion:"+dev.ID || m.Actor != dev.Actor {
		t.Errorf("envelope %+v", m)
	}
	if p.ChangeSetID != root || p.Commit.SHA != sha || !p.AutoApprove || p.Promotion.From != dev.ID || p.Promotion.FromEnv != "dev" ||
		p.Promotion.Soak != "10m0s" || p.Promotion.SoakSkipped.Reason != "verified by hand" {
		t.Errorf("payload %+v, promotion %+v", p, p.Promotion)
	}
}

// memStore is a changeset.Store in memory.
type memStore map[string]*changeset.ChangeSet

func (m memStore) Create(_ context.Context, cs *changeset.ChangeSet) (bool, error) {
	m[cs.ID] = cs
	return true, nil
}
func (m memStore) Get(_ context.Context, id string) (*changeset.ChangeSet, error) { return m[id], nil }
func (m memStore) Update(_ context.Context, id string, fn func(*changeset.ChangeSet) error) (*changeset.ChangeSet, error) {
	return m[id], fn(m[id])
}
func (m memStore) List(context.Context) ([]*changeset.ChangeSet, error) {
	var out []*changeset.ChangeSet
	for _, cs := range m {
		out = append(out, cs)
	}
	// newest first, as every store lists them
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

var _ changeset.Store = memStore{}

// A publish that fails records nothing: the promotion is started again next time.
func TestStartRecordsOnlyWhatItPublished(t *testing.T) {
	t.Parallel()
	dev := devApplied()
	store := memStore{dev.ID: dev}
	broken := func(context.Context, ...message.Envelope) error { return errors.New("bus down") }
	if _, err := Start(context.Background(), store, broken, t0.Add(time.Hour)); err == nil || !dev.Promotion.PromotedAt.IsZero() {
		t.Fatalf("%v, promoted at %v", err, dev.Promotion.PromotedAt)
	}
	var sent []message.Envelope
	ok := func(_ context.Context, msgs ...message.Envelope) error { sent = append(sent, msgs...); return nil }
	started, err := Start(context.Background(), store, ok, t0.Add(time.Hour))
	if err != nil || len(started) != 1 || started[0].ChangeSetID != root+"/qa" || len(sent) != 1 || dev.Promotion.PromotedAt.IsZero() {
		t.Fatalf("started %+v, sent %d, %v", started, len(sent), err)
	}
}

// Two changes of dev, due at the same check (a check that ran late): the earlier change is
// promoted first, so that the next environment orders its change set first, as dev did — never
// the later change ahead of the earlier one on the components they share.
func TestStartPromotesInTheOrderOfTheChanges(t *testing.T) {
	t.Parallel()
	store := memStore{}
	for i, corr := range []string{"019cebab-87be-7000-8000-00000000000a", "019cebab-87be-7000-8000-000000000009", "019cebab-87be-7000-8000-00000000000b"} {
		cs := devApplied()
		cs.ID, cs.CorrelationID, cs.CreatedAt = corr+"/dev", corr, t0.Add(time.Duration(i)*time.Minute)
		store[cs.ID] = cs
	}
	var sent []string
	publish := func(_ context.Context, msgs ...message.Envelope) error {
		for _, m := range msgs {
			sent = append(sent, m.CorrelationID)
		}
		return nil
	}
	if _, err := Start(context.Background(), store, publish, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	want := []string{"019cebab-87be-7000-8000-00000000000a", "019cebab-87be-7000-8000-000000000009", "019cebab-87be-7000-8000-00000000000b"}
	if len(sent) != len(want) {
		t.Fatalf("published %v, want %v", sent, want)
	}
	for i := range want {
		if sent[i] != want[i] {
			t.Fatalf("published %v, want the changes in the order they were made: %v", sent, want)
		}
	}
}

// A held promotion into prod is tried again once prod moved (a later change set there), not
// before; rejected (karma reject of the held change set), its tries stop, and the promotion
// stops there, saying who rejected it.
func TestAHeldPromotionIsTriedAgainUntilRejected(t *testing.T) {
	t.Parallel()
	dev := changeSet("dev", changeset.Applied)
	dev.Promotion = &changeset.Promotion{Next: "prod", Files: []string{"iac/_base/vpc/core/config.json"}, Commit: &message.Commit{SHA: sha, Author: "Ada"}}
	dev.SettlePromotion(t0)
	dev.MarkPromoted(t0)
	held := &changeset.ChangeSet{ID: root + "/prod", Env: "prod", CorrelationID: root, Source: message.SourceGit, PromotedFrom: dev.ID,
		CreatedAt: t0, Nodes: map[string]*changeset.Node{}, Approved: true, ApprovedBy: "auto-approve",
		Held: &changeset.Hold{Reason: "promotion held: …", Attempt: 1, Waiting: []string{"dev"}}}
	store := memStore{dev.ID: dev, held.ID: held}
	held.Held.On = changeset.HeldOn([]*changeset.ChangeSet{dev, held}, "prod", []string{"dev"}, held.ID, t0)
	var published []message.Envelope
	publish := func(_ context.Context, msgs ...message.Envelope) error {
		published = append(published, msgs...)
		return nil
	}
	if started, err := Start(context.Background(), store, publish, t0.Add(time.Hour)); err != nil || len(started) != 0 {
		t.Fatalf("started %+v, %v: nothing moved since the hold", started, err)
	}
	hotfix := changeSet("prod", changeset.Applied)
	hotfix.ID, hotfix.CorrelationID, hotfix.CreatedAt = "019cebab-87be-7000-8000-000000000002/prod", "019cebab-87be-7000-8000-000000000002", t0.Add(time.Minute)
	store[hotfix.ID] = hotfix
	started, err := Start(context.Background(), store, publish, t0.Add(time.Hour))
	if err != nil || len(started) != 1 || started[0].ChangeSetID != root+"/prod@2" || started[0].Attempt != 2 || len(published) != 1 ||
		published[0].IdempotencyKey != "promotion:"+dev.ID+"@2" {
		t.Fatalf("started %+v, published %d, %v: want the second try", started, len(published), err)
	}
	if err := held.Reject("grace", "not promoting this one"); err != nil {
		t.Fatalf("rejecting the held promotion: %v", err)
	}
	if err := held.SkipRejected(); err != nil { // as resolve carries it out (change.rejected)
		t.Fatalf("carrying out the rejection: %v", err)
	}
	if started, _ := Start(context.Background(), store, publish, t0.Add(time.Hour)); len(started) != 0 {
		t.Errorf("a rejected held promotion tried again: %+v", started)
	}
	r, err := Status([]*changeset.ChangeSet{dev, held, hotfix}, root, t0.Add(time.Hour))
	if err != nil || r.Current().State != StateStopped || r.Stopped == "" {
		t.Errorf("status %+v, %v: want stopped, rejected", r, err)
	}
}

// A change of qa and prod (dev → qa → prod) starts in qa, where it is held: its tree carries a
// change not through dev yet. Its status is held in qa; tried again (qa@2, deploying), its status
// follows the try, whatever order the change sets are listed in; and a held try that was
// rejected is not tried again.
func TestAChangeHeldInItsFirstEnvironment(t *testing.T) {
	t.Parallel()
	c := &changeset.HeldChange{Files: []string{"iac/qa/vpc/core/config.json", "iac/prod/vpc/core/config.json"}, Commit: &message.Commit{SHA: sha, Author: "Ada"}}
	held := &changeset.ChangeSet{ID: root + "/qa", Env: "qa", CorrelationID: root, Source: message.SourceGit, CreatedAt: t0,
		Actor: message.Actor{Kind: "git", Name: "Ada"}, Nodes: map[string]*changeset.Node{}, Promotion: &changeset.Promotion{Next: "prod"},
		Held: &changeset.Hold{Reason: "held: …", Attempt: 1, Waiting: []string{"dev"}, Change: c}}
	r, err := Status([]*changeset.ChangeSet{held}, root, t0)
	if err != nil || r.Current().State != StateHeld || r.Current().Env != "qa" {
		t.Fatalf("status %+v, %v: want held in qa", r, err)
	}
	// dev moved: tried again, as qa@2, the same change with retry.attempt 2
	other := changeSet("dev", changeset.Applied)
	other.ID, other.CorrelationID = "019cebab-87be-7000-8000-000000000002/dev", "019cebab-87be-7000-8000-000000000002"
	other.Promotion = &changeset.Promotion{Next: "qa"}
	other.SettlePromotion(t0)
	store := memStore{held.ID: held, other.ID: other}
	var published []message.Envelope
	publish := func(_ context.Context, msgs ...message.Envelope) error {
		published = append(published, msgs...)
		return nil
	}
	started, err := Start(context.Background(), store, publish, t0.Add(time.Hour))
	var try *message.Envelope
	for i, m := range published {
		if m.CorrelationID == root {
			try = &published[i]
		}
	}
	if err != nil || try == nil || try.Env != "qa" || try.IdempotencyKey != "git:"+sha+"/qa@2" ||
		!slices.ContainsFunc(started, func(s Started) bool { return s.Held == held.ID && s.ChangeSetID == root+"/qa@2" && s.Attempt == 2 }) {
		t.Fatalf("started %+v, published %+v, %v: want the change tried again in qa", started, published, err)
	}
	messagetest.Validate(t, *try)
	var p message.ChangeDetected
	if err := message.Decode(*try, &p); err != nil || p.Retry == nil || p.Retry.Attempt != 2 || p.Promotion != nil || p.Commit.SHA != sha || len(p.Files) != 2 {
		t.Fatalf("the try: %+v, %v", p, err)
	}
	second := changeSet("qa", changeset.Planned)
	second.ID, second.HeldBefore, second.Promotion = root+"/qa@2", held.ID, &changeset.Promotion{Next: "prod"}
	held.Held.RetriedAs = second.ID
	for _, all := range [][]*changeset.ChangeSet{{held, second}, {second, held}} {
		if r, err := Status(all, root, t0); err != nil || r.Current().ChangeSetID != second.ID || r.Current().State == StateHeld {
			t.Errorf("status %+v, %v: want it at the second try", r, err)
		}
	}
	// held again, then rejected: not tried again
	second.Nodes, second.Waves = map[string]*changeset.Node{}, [][]string{}
	second.Held = &changeset.Hold{Reason: "held: …", Attempt: 2, Waiting: []string{"dev"}, Change: c, On: "before"}
	if err := second.Reject("grace", "not this one"); err != nil {
		t.Fatal(err)
	}
	store[second.ID] = second
	published = nil
	if started, _ := Start(context.Background(), store, publish, t0.Add(2*time.Hour)); len(started) != 0 {
		t.Errorf("a rejected held change tried again: %+v", started)
	}
}
