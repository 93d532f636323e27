package api

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
)

// GET /healthz — the process serves (liveness): always 200 while it runs.
// GET /readyz — it can answer (Readiness): the change set store and the audit log answer, the
// current graph builds, and every Config.Ready check passes, each within 5 s; else 503 listing
// what failed.

func (s *server) healthz(w http.ResponseWriter, _ *http.Request, _ Caller) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Readiness is the answer of GET /readyz.
type Readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request, _ Caller) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	r = r.WithContext(ctx)
	checks := map[string]func(*http.Request) error{
		"change_sets": func(r *http.Request) error {
			_, err := s.cfg.ChangeSets.Get(r.Context(), "readyz-probe")
			if errors.Is(err, changeset.ErrNotFound) {
				return nil
			}
			return err
		},
		"audit_log": func(r *http.Request) error {
			_, err := s.cfg.Audit.Query(r.Context(), audit.Query{Correlation: "readyz-probe", Limit: 1})
			return err
		},
		"graph": func(r *http.Request) error {
			_, err := s.cfg.Graphs.Current(r.Context(), "")
			return err
		},
	}
	for name, check := range s.cfg.Ready {
		checks[name] = check
	}
	out := Readiness{Status: "ready", Checks: map[string]string{}}
	var failed []FieldError
	for name, check := range checks {
		if err := check(r); err != nil {
			out.Checks[name] = err.Error()
			failed = append(failed, FieldError{Pointer: "/checks/" + name, Detail: err.Error()})
		} else {
			out.Checks[name] = "ok"
		}
	}
	if len(failed) > 0 {
		sort.Slice(failed, func(i, j int) bool { return failed[i].Pointer < failed[j].Pointer })
		p := unavailable("not ready: %d check(s) failed", len(failed))
		p.Errors = failed
		return p
	}
	return writeJSON(w, http.StatusOK, out)
}
