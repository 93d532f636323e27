package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
)

// GET /components/{env}/{type}/{nickname}?deployments=N — one component: its vertex in the
// graph, its resolved config (secrets redacted: redact.go), its runtime as published, what it
// depends on and what depends on it with the runtime keys each edge consumes, its diagnostics,
// and its latest deployments (newest first, N of them, default 10).

// ComponentView is the answer of GET /components/{env}/{type}/{nickname}.
type ComponentView struct {
	graph.Component
	Config       any                  `json:"config"`  // null when its files cannot be resolved
	Runtime      *Runtime             `json:"runtime"` // null: not published (or no parameter store)
	Dependencies []Link               `json:"dependencies"`
	Dependents   []Link               `json:"dependents"`
	Deployments  []lineage.Deployment `json:"deployments"`
	Diagnostics  model.Diagnostics    `json:"diagnostics"`
	// Source is its environment file, the one a proposal replaces (null when it has none).
	Source *SourceFile `json:"source"`
}

// SourceFile is a component's environment file as committed at the graph's commit, with the
// values of secret-named keys redacted (Redacted says whether any was: a proposal made from it
// must put the secrets back).
type SourceFile struct {
	Path     string `json:"path"`
	Content  any    `json:"content"`
	Redacted bool   `json:"redacted"`
}

// Link is one edge seen from the component: the other end and the keys the dependent consumes.
type Link struct {
	Component string         `json:"component"`
	Consumes  []string       `json:"consumes"`
	Sources   []graph.Source `json:"sources"`
}

// Runtime is a component's runtime parameter as published (its value redacted where secret).
type Runtime struct {
	Parameter        string    `json:"parameter"`
	Type             string    `json:"type"`
	Version          int64     `json:"version"`
	LastModified     time.Time `json:"last_modified"`
	LastModifiedUser string    `json:"last_modified_user,omitempty"`
	Value            any       `json:"value"` // the published document (JSON), or Redacted
}

func (s *server) getComponent(w http.ResponseWriter, r *http.Request, _ Caller) error {
	env, typ, nick := r.PathValue("env"), r.PathValue("type"), r.PathValue("nickname")
	q := &query{r: r}
	n := q.int("deployments", 10, 0, 100)
	if err := q.err(); err != nil {
		return err
	}
	res, err := s.current(r.Context(), env, "/path/env")
	if err != nil {
		return err
	}
	id := env + "/" + typ + "/" + nick
	i, ok := res.Graph.Index(id)
	if !ok {
		return notFound("no component %s: GET /graph?env=%s lists the environment's components", id, env)
	}
	g := res.Graph
	v := ComponentView{Component: g.Components[i], Dependencies: []Link{}, Dependents: []Link{}, Diagnostics: model.Diagnostics{}}
	for _, ei := range g.Dependencies(i) {
		e := g.Edges[ei]
		v.Dependencies = append(v.Dependencies, Link{Component: g.Components[e.To].ID, Consumes: e.Consumes, Sources: e.Sources})
	}
	for _, ei := range g.Dependents(i) {
		e := g.Edges[ei]
		v.Dependents = append(v.Dependents, Link{Component: g.Components[e.From].ID, Consumes: e.Consumes, Sources: e.Sources})
	}
	for _, d := range res.Diagnostics {
		if d.Component == id {
			v.Diagnostics = append(v.Diagnostics, d)
		}
	}
	v.Config = resolvedConfig(res, id)
	v.Source = sourceFile(res, env, typ, nick)
	if v.Runtime, err = s.runtime(r, env, res.Repo.Settings.Prefix, v.RuntimePath); err != nil {
		return err
	}
	if v.Deployments, err = s.deployments(r, id, n); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func resolvedConfig(res *model.Result, id string) any {
	for _, c := range res.Repo.Components {
		if c.ID() == id && c.Resolved != nil {
			var cfg any
			if json.Unmarshal(c.Resolved, &cfg) == nil {
				red, _ := redactDeep(cfg)
				return red
			}
		}
	}
	return nil
}

func sourceFile(res *model.Result, env, typ, nick string) *SourceFile {
	name := "iac/" + env + "/" + typ + "/" + nick + "/config.json"
	raw, err := res.Repo.ReadFile(name)
	var doc any
	if err != nil || json.Unmarshal(raw, &doc) != nil {
		return nil
	}
	red, changed := redactDeep(doc)
	return &SourceFile{Path: name, Content: red, Redacted: changed}
}

// runtime reads the component's runtime parameter; nil when none is published, or when the
// store is bound to another environment: an account is one environment, and with Parameter
// Store every environment's runtimes are read from the one account of the credentials, so a
// store whose <prefix>/environment names another environment holds that one's runtimes, not
// env's (the graph says so: environment-binding).
func (s *server) runtime(r *http.Request, env, prefix, name string) (*Runtime, error) {
	if s.cfg.Params == nil {
		return nil, nil
	}
	store, err := s.cfg.Params(env)
	if err != nil || store == nil {
		return nil, err
	}
	bound, err := store.Get(r.Context(), model.EnvironmentParam(prefix))
	switch {
	case err == nil && strings.TrimSpace(bound.Value) != "" && strings.TrimSpace(bound.Value) != env:
		return nil, nil
	case err != nil && !errors.Is(err, params.ErrNotFound):
		return nil, err
	}
	p, err := store.Get(r.Context(), name)
	if errors.Is(err, params.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v := &Runtime{Parameter: p.Name, Type: p.Type, Version: p.Version, LastModified: p.LastModified, LastModifiedUser: p.LastModifiedUser, Value: Redacted}
	if p.Type != params.TypeSecureString {
		var doc any
		if json.Unmarshal([]byte(p.Value), &doc) != nil {
			doc = p.Value // not JSON (written by someone else): a string, its URL passwords and secret-named NAME=value pairs redacted
		}
		v.Value, _ = redactDeep(doc)
	}
	return v, nil
}

// deployments are the component's latest n deployments, newest first.
func (s *server) deployments(r *http.Request, id string, n int) ([]lineage.Deployment, error) {
	ds, err := s.cfg.Lineage.Deployments(r.Context(), id)
	if err != nil && !errors.Is(err, lineage.ErrNotFound) {
		return nil, err
	}
	if len(ds) > n {
		ds = ds[:n]
	}
	if ds == nil {
		ds = []lineage.Deployment{}
	}
	return ds, nil
}
