package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/usekarma/karma/shared/drift"
)

// GET /drift?env=&component= — the drift check as a read (docs/drift.md): each component's
// /config compared with Git's intent at the deploy branch's head, its /runtime with what Karma's
// last deployment published, and, in environments that set drift_refresh, its infrastructure
// with the Terraform state. Nothing is recorded or queued: drifts an earlier run recorded say so
// (recorded, action, change_set_id); recording is `karma drift`'s and the schedules'. component
// is <env>/<type>/<nickname>, or <type>/<nickname> with env.

func (s *server) getDrift(w http.ResponseWriter, r *http.Request, _ Caller) error {
	if s.cfg.Drift == nil {
		return notFound("this server runs no drift check: run karma drift, or configure the API with one")
	}
	o, err := driftOptions(&query{r: r})
	if err != nil {
		return err
	}
	rep, err := s.cfg.Drift.Check(r.Context(), o)
	var nf *drift.NotFoundError
	if errors.As(err, &nf) {
		p := notFound("%s: GET /graph lists the environments and their components", strings.TrimPrefix(err.Error(), "drift: "))
		pointer := "/query/env"
		if nf.What == "component" {
			pointer = "/query/component"
		}
		p.Errors = []FieldError{{Pointer: pointer, Detail: "not defined at the deploy branch's head"}}
		return p
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

// driftOptions reads env and component: <env>/<type>/<nickname>, or <type>/<nickname> with env.
func driftOptions(q *query) (drift.Options, error) {
	o := drift.Options{Env: q.str("env")}
	if c := q.str("component"); c != "" {
		parts := strings.Split(c, "/")
		empty := false
		for _, p := range parts {
			empty = empty || p == ""
		}
		switch {
		case len(parts) == 3 && !empty:
			o.Component = c
		case len(parts) == 2 && !empty && o.Env != "":
			o.Component = o.Env + "/" + c
		case len(parts) == 2 && !empty:
			q.fail("component", "<type>/<nickname> needs env; or give <env>/<type>/<nickname>")
		default:
			q.fail("component", "want <env>/<type>/<nickname>, e.g. prod/vpc/core; got "+c)
		}
	}
	return o, q.err()
}
