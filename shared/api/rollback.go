package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/usekarma/karma/shared/rollback"
	"github.com/usekarma/karma/shared/trigger"
)

// POST /deployments/{id}/rollback — deploy again exactly what an applied deployment deployed
// (its config, with its commit's module), then the dependents that consume a changed key, as a
// change of its own: what `karma rollback` does. The checks are the CLI's (rollback.Prepare, at
// the deploy branch's head): 404 for an unknown deployment; 409 with every reason for one that
// never applied, a destroy, what the component runs now, a config that can no longer be applied
// at the head (the component or an upstream no longer defined, today's schema refusing it, a
// dependent reading a runtime key the deployment never published), a
// change set not done that shares a component (the rollback would wait behind it). Accepted: 201,
// Location /changes/{id}; the change is never auto-approved — its plans appear at GET
// /changes/{id} and wait for POST /changes/{id}/approve.

// RollbackCreated is the answer of POST /deployments/{id}/rollback.
type RollbackCreated struct {
	ChangeID   string   `json:"change_id"`
	Component  string   `json:"component"`
	Deployment string   `json:"deployment"`         // rolled back to
	Replaces   string   `json:"replaces,omitempty"` // rolled back from: the deployment applied last
	Commit     string   `json:"commit"`             // the rolled-back-to deployment's commit: its module
	Head       string   `json:"head"`               // the commit the checks, and the dependents, are at
	Affected   []string `json:"affected"`           // the component and its dependents, in waves
}

func (s *server) rollback(w http.ResponseWriter, r *http.Request, c Caller) error {
	if s.cfg.Rollbacks == nil {
		return conflict("this server does not read the config repository, so it cannot check a rollback: run karma rollback %s", r.PathValue("id"))
	}
	if err := noBody(r, s.cfg.MaxBody); err != nil {
		return err
	}
	ctx := r.Context()
	s.mu.Lock() // one change per component at a time in this process; see pending
	defer s.mu.Unlock()
	all, err := s.cfg.ChangeSets.List(ctx)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	p, err := rollback.Prepare(ctx, s.cfg.Rollbacks, all, id)
	if err := rollbackProblem(err, id); err != nil {
		return err
	}
	comp, env := p.Target.Node.Component, p.Target.ChangeSet.Env
	if err := s.pending(ctx, env, comp); err != nil {
		return err
	}
	root, err := trigger.FromRollback(trigger.RollbackRequest{Env: env, Component: comp, Target: *p.Message(), Actor: c.Actor()})
	if err != nil {
		return err
	}
	if err := s.cfg.Publisher.Publish(ctx, root); err != nil {
		return unavailable("queueing the rollback to %s failed (%v): nothing was queued; roll back again", id, err)
	}
	s.requests[comp] = pendingRequest{changeID: root.ID, at: s.cfg.Now()}
	detail := map[string]any{"change_set_id": root.ID, "component": comp, "deployment": id, "replaces": p.Replaces, "head": p.Head}
	if err := s.record(ctx, r, EntryRollback, c, env, root.ID, detail); err != nil {
		s.cfg.Log.Warn("api: rollback queued, its audit entry not written (the change.detected is audited with the caller)", "change", root.ID, "error", err)
	}
	w.Header().Set("Location", "/changes/"+url.PathEscape(root.ID))
	return writeJSON(w, http.StatusCreated, RollbackCreated{ChangeID: root.ID, Component: comp, Deployment: id, Replaces: p.Replaces,
		Commit: p.Target.Commit(), Head: p.Head, Affected: p.Affected})
}

// rollbackProblem answers what rollback.Prepare refused.
func rollbackProblem(err error, id string) error {
	var refused *rollback.RefusedError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rollback.ErrUnknown):
		return notFound("no deployment %q: deployment ids are dep-<16 hex>; GET /components/{env}/{type}/{nickname} lists a component's deployments", id)
	case errors.As(err, &refused):
		return conflict("%v: nothing was queued", err)
	}
	return fmt.Errorf("checking the rollback to %s: %w", id, err)
}
