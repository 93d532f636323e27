package configrepo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/model"
)

// Checking a proposal: before a proposed environment file becomes a commit, it is validated
// with the rest of the repository at a commit (the deploy branch's head) — JSON, schema,
// references, cycles — and its impact computed. `karma propose-change` and the API's
// POST /request-change share this.

// ErrNoSuchComponent refuses a proposal for a component the environment does not define.
var ErrNoSuchComponent = errors.New("configrepo: no such component")

// ErrUnchanged refuses a proposal equal to what the commit holds.
var ErrUnchanged = errors.New("configrepo: the proposal changes nothing")

// InvalidProposalError lists every error the repository has with the proposal in place.
type InvalidProposalError struct {
	File        string            // the proposed file, iac/<env>/<type>/<nickname>/config.json
	Diagnostics model.Diagnostics // error-severity only
}

func (e *InvalidProposalError) Error() string {
	return fmt.Sprintf("%s: %d error(s) with the proposal in place: %v", e.File, len(e.Diagnostics), e.Diagnostics.Err())
}

// Checked is a proposal validated at a commit.
type Checked struct {
	Env, Type, Nickname string
	Base                string // the commit it was validated against
	File                string // iac/<env>/<type>/<nickname>/config.json
	Data                []byte // the proposed file
	Result              *model.Result
	Impact              graph.ImpactReport // what the change may redeploy, in waves
	// Extending are the components extending it (at any depth): they deploy with it (resolve
	// makes them roots of the request).
	Extending []string
}

// ID is the component's id, <env>/<type>/<nickname>.
func (c *Checked) ID() string { return c.Env + "/" + c.Type + "/" + c.Nickname }

// CheckProposal validates data as env's file of type/nick at commit base. Errors:
// ErrNoSuchComponent, ErrUnchanged (wrapped, naming the commit), *InvalidProposalError, or the
// repository's.
func (s *Source) CheckProposal(ctx context.Context, base, env, typ, nick string, data []byte) (*Checked, error) {
	c := &Checked{Env: env, Type: typ, Nickname: nick, Base: base, Data: data, File: "iac/" + env + "/" + typ + "/" + nick + "/config.json"}
	if env == model.BaseEnv {
		return nil, fmt.Errorf("%w: %s holds the layers that environments inherit, not components: propose the change in an environment, or commit the layer's change to Git", ErrNoSuchComponent, model.BaseEnv)
	}
	committed, err := s.Repo.ReadFileAt(ctx, base, c.File)
	if err != nil {
		return nil, fmt.Errorf("%w: %s/%s in %s at commit %.12s (%s): %v", ErrNoSuchComponent, typ, nick, env, base, c.File, err)
	}
	if sameJSON(committed, data) {
		return nil, fmt.Errorf("%w: the proposal equals what commit %.12s holds for %s/%s in %s: nothing to change, nothing queued", ErrUnchanged, base, typ, nick, env)
	}
	if c.Result, err = s.Build(ctx, env, base, map[string][]byte{c.File: data}); err != nil {
		return nil, err
	}
	if errs := c.Result.Diagnostics.Errors(); len(errs) > 0 {
		return nil, &InvalidProposalError{File: c.File, Diagnostics: errs}
	}
	seed, ok := c.Result.Graph.Index(c.ID())
	if !ok {
		return nil, fmt.Errorf("%w: %s is not in the graph of %s at commit %.12s", ErrNoSuchComponent, c.ID(), env, base)
	}
	c.Extending = extending(c)
	seeds := []int32{seed}
	for _, id := range c.Extending {
		i, _ := c.Result.Graph.Index(id)
		seeds = append(seeds, i)
	}
	imp, err := c.Result.Graph.Downstream(seeds, graph.ImpactOptions{})
	if err != nil {
		return nil, err
	}
	c.Impact = c.Result.Graph.Report(imp)
	return c, nil
}

// sameJSON reports whether two documents are the same JSON (whitespace and key order aside).
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
