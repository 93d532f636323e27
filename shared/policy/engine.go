package policy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Query is what the policies are asked: every rule of package karma.
const Query = "data.karma"

// Source reads the policy files of a commit: path -> Rego source (nil or empty: no policies).
type Source interface {
	Policies(ctx context.Context, commit string) (map[string][]byte, error)
}

// ErrInvalid marks policies that do not compile or decide something other than sets of strings:
// a permanent error (the commit's policies are wrong; committing a fix is the way out).
var ErrInvalid = errors.New("policy: invalid")

// InvalidError says which commit's policies are wrong, and how.
type InvalidError struct {
	Commit string
	Err    error
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("policy: the policies of commit %.12s are invalid: %v", e.Commit, e.Err)
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *InvalidError) Unwrap() []error { return []error{ErrInvalid, e.Err} }

// Permanent: retrying does not fix a policy (shared/pipeline's classifier).
func (e *InvalidError) Permanent() bool { return true }

// Set is the compiled policies of one commit.
type Set struct {
	query rego.PreparedEvalQuery
	empty bool
}

// Compile compiles policy files (Rego v1) into a Set.
func Compile(ctx context.Context, files map[string][]byte) (*Set, error) {
	if len(files) == 0 {
		return &Set{empty: true}, nil
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	// Strict built-in errors: a built-in that fails (a bad sprintf, a type error at run time)
	// fails the evaluation — which denies, fail closed — instead of leaving a deny rule
	// undefined, which would let the change through.
	opts := []func(*rego.Rego){rego.Query(Query), rego.SetRegoVersion(ast.RegoV1), rego.StrictBuiltinErrors(true),
		rego.Capabilities(capabilities())}
	for _, n := range names {
		opts = append(opts, rego.Module(n, string(files[n])))
	}
	q, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	if err := decides(files, names); err != nil {
		return nil, err
	}
	return &Set{query: q}, nil
}

// refusedBuiltins are the Rego built-ins a policy may not call: they reach outside the commit
// and the change — a request from the process deciding (to a metadata endpoint, say, whose
// answer a deny message would then record), a DNS lookup, the process's runtime. A policy
// calling one does not compile (ErrInvalid, naming it as an unknown function).
var refusedBuiltins = map[string]bool{"http.send": true, "net.lookup_ip_addr": true, "opa.runtime": true}

// capabilities are OPA's built-ins but refusedBuiltins, and no host allowed to any network
// built-in a later OPA may add.
func capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	kept := make([]*ast.Builtin, 0, len(caps.Builtins)) // (a new slice: never OPA's own)
	for _, b := range caps.Builtins {
		if !refusedBuiltins[b.Name] {
			kept = append(kept, b)
		}
	}
	caps.Builtins = kept
	caps.AllowNet = []string{}
	return caps
}

// decides refuses policy files of which no module is in package karma: data.karma would be
// undefined, every evaluation would decide nothing, and their deny rules — written in another
// package ("package karma.ownership", "package policies") — would let every change through,
// silently. Modules in other packages are helpers a package karma module may import.
func decides(files map[string][]byte, names []string) error {
	var pkgs []string
	for _, n := range names {
		m, err := ast.ParseModuleWithOpts(n, string(files[n]), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return err // compiled above, so this does not happen
		}
		if m.Package.Path.String() == Query {
			return nil
		}
		pkgs = append(pkgs, fmt.Sprintf("%s is %s", n, m.Package))
	}
	return fmt.Errorf("no module is in package karma, so nothing would be decided (%s): deny and require_approval are read from package karma", strings.Join(pkgs, ", "))
}

// Evaluate decides in.
func (s *Set) Evaluate(ctx context.Context, in Input) (Decision, error) {
	if s.empty {
		return Decision{}, nil
	}
	rs, err := s.query.Eval(ctx, rego.EvalInput(in))
	if err != nil {
		return Decision{}, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, nil // no package karma: nothing decided
	}
	doc, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("data.karma is %T, want an object", rs[0].Expressions[0].Value)
	}
	var d Decision
	if d.Deny, err = reasons(doc, "deny"); err != nil {
		return Decision{}, err
	}
	if d.RequireApproval, err = reasons(doc, "require_approval"); err != nil {
		return Decision{}, err
	}
	return d, nil
}

// reasons reads rule name of data.karma: a set (or array) of strings, sorted.
func reasons(doc map[string]any, name string) ([]string, error) {
	v, ok := doc[name]
	if !ok {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("data.karma.%s is %T: want a set of strings (the reasons)", name, v)
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("data.karma.%s holds %v: want strings (the reasons)", name, x)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Engine evaluates the policies of each commit, read from Source and compiled once per commit
// (Cached sets, oldest dropped past MaxSets). Safe for concurrent use.
type Engine struct {
	Source Source
	// Floor is the operator's policies (KARMA_POLICIES, LoadDir), evaluated beside every
	// commit's and joined with them (floor.go); nil: the commit's alone.
	Floor *Set
	// MaxSets bounds the compiled sets kept (default 32).
	MaxSets int

	mu    sync.Mutex
	sets  map[string]*entry
	order []string // commits, oldest first
}

type entry struct {
	once sync.Once
	set  *Set
	err  error
}

var _ Evaluator = (*Engine)(nil)

// Evaluate decides in with the policies of commit.
func (e *Engine) Evaluate(ctx context.Context, commit string, in Input) (Decision, error) {
	s, err := e.compiled(ctx, commit)
	if err != nil {
		return Decision{}, err
	}
	d, err := s.Evaluate(ctx, in)
	if err != nil {
		if ctx.Err() != nil {
			// Cancelled or past its deadline (a shutdown, the Lambda's time): nothing was
			// decided, so nothing is recorded as a denial; the caller retries.
			return Decision{}, fmt.Errorf("policy: evaluating the policies of commit %.12s: %w", commit, ctx.Err())
		}
		return Decision{}, &InvalidError{Commit: commit, Err: err}
	}
	if e.Floor == nil {
		return d, nil
	}
	fd, err := e.Floor.Evaluate(ctx, in)
	switch {
	case err != nil && ctx.Err() != nil:
		return Decision{}, fmt.Errorf("policy: evaluating the operator's policies: %w", ctx.Err())
	case err != nil:
		return Decision{}, floorError(err)
	}
	return join(d, fd), nil
}

// compiled returns the compiled policies of commit, compiling them once.
func (e *Engine) compiled(ctx context.Context, commit string) (*Set, error) {
	en := e.entry(commit)
	en.once.Do(func() {
		files, err := e.Source.Policies(ctx, commit)
		if err != nil {
			en.err = fmt.Errorf("policy: reading the policies of commit %.12s: %w", commit, err)
			return
		}
		en.set, en.err = Compile(ctx, files)
		switch {
		case en.err != nil && ctx.Err() != nil: // cancelled while compiling: not the policies' fault
			en.err = fmt.Errorf("policy: compiling the policies of commit %.12s: %w", commit, ctx.Err())
		case en.err != nil:
			en.err = &InvalidError{Commit: commit, Err: en.err}
		}
	})
	if en.err != nil && !errors.Is(en.err, ErrInvalid) {
		e.forget(commit) // reading failed (transient): try again next time
	}
	return en.set, en.err
}

func (e *Engine) entry(commit string) *entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sets == nil {
		e.sets = map[string]*entry{}
	}
	if en, ok := e.sets[commit]; ok {
		return en
	}
	max := e.MaxSets
	if max <= 0 {
		max = 32
	}
	for len(e.order) >= max {
		delete(e.sets, e.order[0])
		e.order = e.order[1:]
	}
	en := &entry{}
	e.sets[commit] = en
	e.order = append(e.order, commit)
	return en
}

func (e *Engine) forget(commit string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.sets, commit)
	for i, c := range e.order {
		if c == commit {
			e.order = append(e.order[:i], e.order[i+1:]...)
			break
		}
	}
}

// Compiles counts how many commits' policies are compiled and kept (for tests and metrics).
func (e *Engine) Compiles() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sets)
}
