package drift

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/terraform"
)

// Source is the config repository at the deploy branch's head (configrepo.Source).
type Source interface {
	Head(ctx context.Context) (string, error)
	Build(ctx context.Context, env, commit string, overrides map[string][]byte) (*model.Result, error)
	Environments(ctx context.Context, commit string) ([]string, error)
}

// ChangeSets lists the change sets, newest first (changeset.Store).
type ChangeSets interface {
	List(ctx context.Context) ([]*changeset.ChangeSet, error)
}

// Checker runs the comparisons of the environments it is asked for.
type Checker struct {
	Source     Source
	ChangeSets ChangeSets
	// Params returns an environment's parameter store.
	Params func(env string) (params.Store, error)
	// Refresher and Workspaces run the infrastructure comparison where drift_refresh is set; a
	// nil Refresher reports such an environment's refresh as an error.
	Refresher   terraform.Refresher
	Workspaces  Workspaces
	Parallelism int // terraform runs at once (default 1)
	// SkipRefresh: compare the parameters only, never run terraform (GET /drift: a read);
	// environments that set drift_refresh say so (RefreshSkipped).
	SkipRefresh bool
}

// Options select what to compare.
type Options struct {
	Env       string // one environment ("" = every environment at the head)
	Component string // one component id "<env>/<type>/<nickname>" ("" = every component)
}

// NotFoundError says an environment or component asked for does not exist at the head.
type NotFoundError struct {
	What, Name, Commit string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("drift: %s %q is not defined at the deploy branch's head %s", e.What, e.Name, short(e.Commit))
}

// Check compares the selected environments with the deploy branch's head and reports what
// drifted. It publishes nothing (Recorder does). Errors that stop one comparison (a refresh that
// fails, a repository with errors) are in the report; the error is for what stops the run.
func (c *Checker) Check(ctx context.Context, o Options) (*Report, error) {
	head, err := c.Source.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("drift: the deploy branch's head: %w", err)
	}
	envs, err := c.envs(ctx, head, o)
	if err != nil {
		return nil, err
	}
	sets, err := c.ChangeSets.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("drift: listing the change sets: %w", err)
	}
	rep := &Report{Commit: head}
	for _, env := range envs {
		er, err := c.checkEnv(ctx, head, env, o.Component, sets)
		if err != nil {
			return nil, err
		}
		rep.Envs = append(rep.Envs, er)
	}
	return rep, nil
}

// envs are the environments to check: o.Env, the component's, or every one at the head.
func (c *Checker) envs(ctx context.Context, head string, o Options) ([]string, error) {
	env := o.Env
	if o.Component != "" {
		cenv, _, _ := strings.Cut(o.Component, "/")
		if env != "" && cenv != env {
			return nil, &NotFoundError{What: "component", Name: o.Component + " in environment " + env, Commit: head}
		}
		env = cenv
	}
	all, err := c.Source.Environments(ctx, head)
	if err != nil {
		return nil, fmt.Errorf("drift: the environments at %s: %w", short(head), err)
	}
	if env == "" {
		return all, nil
	}
	for _, e := range all {
		if e == env {
			return []string{env}, nil
		}
	}
	return nil, &NotFoundError{What: "environment", Name: env, Commit: head}
}

// checkEnv runs the comparisons of one environment.
func (c *Checker) checkEnv(ctx context.Context, head, env, only string, sets []*changeset.ChangeSet) (EnvReport, error) {
	er := EnvReport{Env: env, Busy: []Busy{}, RolledBack: []RolledBack{}, Findings: []Finding{}, Errors: []string{}}
	res, err := c.Source.Build(ctx, env, head, nil)
	if err != nil {
		return er, fmt.Errorf("drift: building %s at %s: %w", env, short(head), err)
	}
	er.AllowDrift, er.Refresh = res.Repo.Flag(env, model.FlagAllowDrift), res.Repo.Flag(env, model.FlagDriftRefresh)
	if errs := res.Diagnostics.Errors(); len(errs) > 0 {
		er.Errors = append(er.Errors, fmt.Sprintf("%s at %s has %d error(s), so Git's intent is unknown; first: %s", env, short(head), len(errs), errs[0]))
		return er, nil
	}
	store, err := c.Params(env)
	if err != nil {
		return er, fmt.Errorf("drift: the parameter store of %s: %w", env, err)
	}
	prefix := res.Repo.Settings.Prefix
	ps, err := params.GetByPathDescribed(ctx, store, prefix)
	if err != nil {
		return er, fmt.Errorf("drift: reading %s's parameters under %s: %w", env, prefix, err)
	}
	in := Inputs{Env: env, Prefix: prefix, Commit: head, Components: res.Repo.Components, Params: ps, State: StateOf(sets, env), Only: only}
	if only != "" && !defines(in, only) {
		return er, &NotFoundError{What: "component", Name: only, Commit: head}
	}
	cmp := CompareParameters(in)
	er.Compared, er.Busy, er.Findings = cmp.Compared, append(er.Busy, cmp.Busy...), append(er.Findings, cmp.Findings...)
	er.RolledBack = append(er.RolledBack, cmp.RolledBack...)
	switch {
	case er.Refresh && c.SkipRefresh:
		er.RefreshSkipped = true
	case er.Refresh:
		c.refresh(ctx, &er, in, store)
	}
	for i := range er.Findings { // the infrastructure of a component whose rollback stands too
		for _, rb := range er.RolledBack {
			if er.Findings[i].Component == rb.Component {
				er.Findings[i].Rollback = &rb
			}
		}
	}
	sortFindings(er.Findings)
	return er, nil
}

// refresh runs the infrastructure comparison into er.
func (c *Checker) refresh(ctx context.Context, er *EnvReport, in Inputs, store params.Store) {
	if c.Refresher == nil || c.Workspaces == nil {
		er.Errors = append(er.Errors, fmt.Sprintf("%s sets drift_refresh, but this run cannot run terraform: infrastructure not compared", in.Env))
		return
	}
	r := Refresh{Refresher: c.Refresher, Workspaces: c.Workspaces, Params: store, Prefix: in.Prefix, Parallelism: c.Parallelism}
	out := r.Run(ctx, in)
	er.Refreshed, er.Findings, er.Errors = out.Refreshed, append(er.Findings, out.Findings...), append(er.Errors, out.Errors...)
}

// defines reports whether id is a component at the head, or the owner of a /config parameter
// (an orphan: drift to report too).
func defines(in Inputs, id string) bool {
	for _, c := range in.Components {
		if c.ID() == id {
			return true
		}
	}
	_, ref, _ := strings.Cut(id, "/")
	typ, nick, _ := strings.Cut(ref, "/")
	for _, p := range in.Params {
		if p.Name == model.ConfigParam(in.Prefix, typ, nick) {
			return true
		}
	}
	return false
}

// IsNotFound reports whether err says an environment or component does not exist.
func IsNotFound(err error) bool {
	var nf *NotFoundError
	return errors.As(err, &nf)
}
