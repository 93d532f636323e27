package api

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/message"
)

// lostPublisher accepts the messages and delivers none: a change.detected that never becomes a
// change set (dead-lettered before resolve made one).
type lostPublisher struct{}

func (lostPublisher) Publish(context.Context, ...message.Envelope) error { return nil }

// clock is a settable Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// withLostChanges swaps h's handler for one whose changes are never resolved, on clock c.
func (h *harness) withLostChanges(c *clock) {
	h.t.Helper()
	cfg := h.config()
	cfg.Publisher, cfg.Now = lostPublisher{}, c.Now
	handler, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.handler = handler
}

// wantStillPending checks the 409 of a request made while change id, accepted age ago, is not
// resolved: it says how long ago it was accepted and where to look.
func wantStillPending(t *testing.T, p Problem, id string, age time.Duration) {
	t.Helper()
	if p.Type != ProblemBase+TypePendingChange || !strings.Contains(p.Detail, id) ||
		!strings.Contains(p.Detail, "accepted "+age.String()+" ago") || !strings.Contains(p.Detail, "GET /log?correlation="+id) {
		t.Errorf("the 409 while %s is not resolved: %+v; want it accepted %s ago and GET /log?correlation=%s", id, p, age, id)
	}
}

// A change request accepted whose change never becomes a change set (its change.detected
// dead-lettered) holds its component (409, saying since when and where to look) for
// pendingRequestBound, not until the server restarts; then a new request is accepted, and holds
// the component in its turn.
func TestAnUnresolvedRequestStopsHoldingItsComponent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := &clock{now: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	h.withLostChanges(c)
	var first ChangeCreated
	h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(30))).want(http.StatusCreated).decode(&first)
	c.add(10 * time.Minute)
	p := h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(60))).want(http.StatusConflict).problem()
	wantStillPending(t, p, first.ChangeID, 10*time.Minute)

	c.add(pendingRequestBound - 10*time.Minute)
	var second ChangeCreated
	h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(60))).want(http.StatusCreated).decode(&second)
	if second.ChangeID == first.ChangeID {
		t.Fatalf("the second request: %+v", second)
	}
	p = h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(90))).want(http.StatusConflict).problem()
	wantStillPending(t, p, second.ChangeID, 0)
}

// The same for a rollback through the API: one never resolved stops holding its component.
func TestAnUnresolvedRollbackStopsHoldingItsComponent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const vpc = "iac/prod/vpc/core/config.json"
	_, firstDep := h.deployPush("vpc: two AZs", map[string]string{vpc: `{"cidr": "10.20.0.0/16", "az_count": 2}`})
	h.deployPush("vpc: five AZs", map[string]string{vpc: `{"cidr": "10.20.0.0/16", "az_count": 5}`})
	c := &clock{now: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	h.withLostChanges(c)

	var first RollbackCreated
	h.call("POST", "/deployments/"+firstDep+"/rollback", "writer", nil).want(http.StatusCreated).decode(&first)
	c.add(pendingRequestBound - time.Second)
	p := h.call("POST", "/deployments/"+firstDep+"/rollback", "writer", nil).want(http.StatusConflict).problem()
	wantStillPending(t, p, first.ChangeID, pendingRequestBound-time.Second)

	c.add(time.Second)
	var second RollbackCreated
	h.call("POST", "/deployments/"+firstDep+"/rollback", "writer", nil).want(http.StatusCreated).decode(&second)
	if second.ChangeID == first.ChangeID {
		t.Fatalf("the second rollback: %+v", second)
	}
}
