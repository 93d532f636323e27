package api

import (
	"errors"
	"net/http"

	"github.com/usekarma/karma/shared/lineage"
)

// GET /deployments/{id} — one deployment as the lineage records it (component, change set,
// wave, causes, status and detail, changed keys), with its change set's root cause;
// GET /deployments/{id}/lineage — why it is deployed like this: its causes followed back to the
// root (lineage.Backward: upstream deployments and the keys that reached it, then the commit,
// parameter version or request behind it all), as `karma lineage --json`.

// DeploymentDetail is the answer of GET /deployments/{id}.
type DeploymentDetail struct {
	lineage.Deployment
	Change *lineage.Change `json:"change"` // null when the change is not recorded (yet)
}

func (s *server) getDeployment(w http.ResponseWriter, r *http.Request, _ Caller) error {
	d, err := s.deployment(r)
	if err != nil {
		return err
	}
	v := DeploymentDetail{Deployment: d}
	if ch, err := s.cfg.Lineage.Change(r.Context(), d.ChangeSetID); err == nil {
		v.Change = &ch
	} else if !errors.Is(err, lineage.ErrNotFound) {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *server) getLineage(w http.ResponseWriter, r *http.Request, _ Caller) error {
	d, err := s.deployment(r)
	if err != nil {
		return err
	}
	step, err := lineage.Backward(r.Context(), s.cfg.Lineage, d)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, step)
}

func (s *server) deployment(r *http.Request) (lineage.Deployment, error) {
	id := r.PathValue("id")
	d, err := s.cfg.Lineage.Deployment(r.Context(), id)
	if errors.Is(err, lineage.ErrNotFound) {
		return d, notFound("no deployment %q: deployment ids are dep-<16 hex>; GET /components/{env}/{type}/{nickname} lists a component's deployments", id)
	}
	return d, err
}
