// Package ingest turns what happens outside Karma into change.detected, the root of a change
// set: a change request (CLI propose-change, POST /request-change), a parameter written to the
// parameter store by anyone, a config change found in a Git commit. Each input is a plain struct
// that a webhook handler, an EventBridge event decoder or the CLI fills in; the functions here
// are pure and return the messages to publish (nil when the input changes nothing Karma deploys).
//
// Idempotency keys name the fact: "git:<sha>", "parameter:<name>@<version>", "request:<id>", so
// the same push, parameter version or request delivered twice is one change.
package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
)

// ErrInvalid marks bad input: the caller answers 400 / exit 2 and nothing enters the pipeline.
var ErrInvalid = errors.New("ingest: invalid input")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// The names a change may carry, as the message schemas (and Parameter Store) allow them.
var (
	typeRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	nicknameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	envRe      = regexp.MustCompile(`^[^/\s]+$`)
	shaRe      = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)
)

func validRef(t, n string) bool { return typeRe.MatchString(t) && nicknameRe.MatchString(n) }

// Request is a proposed config change.
type Request struct {
	ID          string            // change request id ("" = the message id)
	Env         string            // environment
	Configs     map[string][]byte // "<type>/<nickname>" -> the new environment file (a JSON object)
	Actor       message.Actor
	AutoApprove bool
	// Commit is the commit the request became (its tree holds Configs): what is deployed. Its
	// idempotency key is the commit's ("git:<sha>"), so the push of that commit arriving later
	// is recognised as the same change.
	Commit *message.Commit
}

// FromRequest validates a change request and makes its change.detected.
func FromRequest(r Request) (message.Envelope, error) {
	if !envRe.MatchString(r.Env) {
		return message.Envelope{}, invalid("change request: environment %q: want a name without '/' or spaces", r.Env)
	}
	if len(r.Configs) == 0 {
		return message.Envelope{}, invalid("change request: no component")
	}
	cr := &message.ChangeRequest{ID: r.ID, Configs: map[string]string{}}
	var comps []message.ComponentRef
	for ref, cfg := range r.Configs {
		t, n, ok := strings.Cut(ref, "/")
		if !ok || !validRef(t, n) {
			return message.Envelope{}, invalid("change request: %q is not <type>/<nickname>", ref)
		}
		if off := params.FirstInvalidUTF8(cfg); off >= 0 {
			return message.Envelope{}, invalid("change request: config for %s: invalid UTF-8 at byte offset %d", ref, off)
		}
		var obj map[string]any
		if err := json.Unmarshal(cfg, &obj); err != nil || obj == nil {
			return message.Envelope{}, invalid("change request: config for %s is not a JSON object: %v", ref, err)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, cfg); err != nil {
			return message.Envelope{}, invalid("change request: config for %s: %v", ref, err)
		}
		cr.Configs[ref] = buf.String()
		comps = append(comps, message.ComponentRef{Type: t, Nickname: n})
	}
	sortRefs(comps)
	p := message.ChangeDetected{Source: message.SourceRequest, Components: comps, Request: cr, AutoApprove: r.AutoApprove}
	if r.Commit != nil {
		if !shaRe.MatchString(r.Commit.SHA) || r.ID == "" {
			return message.Envelope{}, invalid("change request: a request's commit needs its full sha and the request id it names")
		}
		p.Commit, cr.Configs = r.Commit, nil // the commit holds the configs
	}
	return root(r.Env, r.Actor, func(id string) string {
		if cr.ID == "" {
			cr.ID = id
		}
		if p.Commit != nil {
			return "git:" + p.Commit.SHA
		}
		return "request:" + cr.ID
	}, &p)
}

// FileChange is one file a commit touched.
type FileChange struct {
	Path    string
	Removed bool
}

// Commit is a pushed or local commit with the files it changed.
type Commit struct {
	SHA, Author, Message, Branch, Repo string
	Files                              []FileChange
	// Truncated: Files may be incomplete (a push payload's caps); resolve diffs Before..SHA in
	// the repository instead.
	Truncated   bool
	Before      string
	AutoApprove bool
}

// FromCommit makes the change.detected of a commit, or nil when it touches nothing deployable
// (files outside iac/, account_environments/ and the modules folder). A truncated push is always
// queued: its files are known only once resolve has diffed it.
func FromCommit(c Commit, modulesDir string) ([]message.Envelope, error) {
	if !shaRe.MatchString(c.SHA) {
		return nil, invalid("commit: sha %q: want the full 40 (or 64) hex digits", c.SHA)
	}
	if strings.TrimSpace(c.Author) == "" {
		return nil, invalid("commit %s: no author", c.SHA)
	}
	if c.Truncated && c.Before != "" && !shaRe.MatchString(c.Before) {
		return nil, invalid("commit %s: before %q: want the full 40 (or 64) hex digits", c.SHA, c.Before)
	}
	changed := make([]model.ChangedFile, len(c.Files))
	for i, f := range c.Files {
		changed[i] = model.ChangedFile{Path: f.Path, Removed: f.Removed}
	}
	files, refs := model.DeployableChanges(changed, modulesDir)
	if len(files) == 0 && !c.Truncated {
		return nil, nil
	}
	var removed []message.ComponentRef
	for _, r := range refs {
		removed = append(removed, message.ComponentRef{Type: r.Type, Nickname: r.Nickname})
	}
	p := message.ChangeDetected{Source: message.SourceGit, Components: []message.ComponentRef{}, Files: files, Removed: removed,
		Truncated: c.Truncated,
		Commit:    &message.Commit{SHA: c.SHA, Author: c.Author, Message: firstLine(c.Message), Branch: c.Branch, Repo: c.Repo}, AutoApprove: c.AutoApprove}
	if c.Truncated {
		p.Commit.Before = c.Before
		if strings.Trim(c.Before, "0") == "" {
			p.Commit.Before = ""
		}
	}
	e, err := root("", message.Actor{Kind: "git", Name: c.Author}, func(string) string { return CommitKey(c.SHA) }, &p)
	if err != nil {
		return nil, err
	}
	return []message.Envelope{e}, nil
}

// CommitKey is the idempotency key of a commit's change: every delivery of the commit is one
// change.
func CommitKey(sha string) string { return "git:" + sha }

// AsChange returns root (a change.detected made here) as the change changeID: its id,
// correlation id and change set id become changeID. A commit delivered again (a webhook
// redelivery) is published as the change it already has, so that whichever copy the pipeline
// runs is the change its senders were told about.
func AsChange(root message.Envelope, changeID string) (message.Envelope, error) {
	var p message.ChangeDetected
	if err := message.Decode(root, &p); err != nil {
		return root, err
	}
	p.ChangeSetID = changeID
	payload, err := json.Marshal(p)
	if err != nil {
		return root, err
	}
	root.ID, root.CorrelationID, root.Payload = changeID, changeID, payload
	return root, nil
}

// ParameterChange is a parameter written by anyone (a Parameter Store Change event, or the
// embedded store's write).
type ParameterChange struct {
	Env         string
	Prefix      string
	Name        string
	Version     int64
	Operation   string // Create, Update, Delete, LabelParameterVersion
	ModifiedBy  string // LastModifiedUser, when known
	Description string // the version's description (Karma's provenance, when Karma wrote it)
	// Value and Previous are the new and previous values of a /runtime parameter, to find the
	// changed keys (nil Previous = everything is new).
	Value, Previous []byte
	AutoApprove     bool
}

// FromParameter makes the change.detected of a parameter change, or nil when Karma deploys
// nothing for it: a parameter outside <prefix>/<type>/<nickname>/{config,runtime}, a delete or
// label operation, or a value Karma itself wrote (its consequence is already under way).
func FromParameter(pc ParameterChange) ([]message.Envelope, error) {
	if pc.Name == "" || pc.Version <= 0 {
		return nil, invalid("parameter change: need a name and a version > 0")
	}
	rest, ok := strings.CutPrefix(pc.Name, strings.TrimSuffix(pc.Prefix, "/")+"/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || (parts[2] != "config" && parts[2] != "runtime") {
		return nil, nil
	}
	if !validRef(parts[0], parts[1]) {
		return nil, invalid("parameter %s: %q is not a component type/nickname", pc.Name, parts[0]+"/"+parts[1])
	}
	if pc.Env != "" && !envRe.MatchString(pc.Env) {
		return nil, invalid("parameter %s: environment %q", pc.Name, pc.Env)
	}
	if pc.Operation != "" && pc.Operation != "Create" && pc.Operation != "Update" {
		return nil, nil
	}
	if params.IsKarmaWrite(pc.Description, string(pc.Value)) {
		return nil, nil
	}
	p := message.ChangeDetected{Source: message.SourceParameter, Components: []message.ComponentRef{{Type: parts[0], Nickname: parts[1]}},
		Parameter: &message.ParameterVersion{Name: pc.Name, Version: pc.Version, ModifiedBy: pc.ModifiedBy}, AutoApprove: pc.AutoApprove}
	if parts[2] == "runtime" {
		p.Source = message.SourceRuntime
		keys, err := ChangedKeys(pc.Previous, pc.Value)
		if err != nil {
			return nil, invalid("parameter %s: %v", pc.Name, err)
		}
		p.ChangedKeys = keys
	}
	actor := message.Actor{Kind: "iam", Name: pc.ModifiedBy}
	if actor.Name == "" {
		actor.Name = "unknown (Parameter Store does not say)"
	}
	e, err := root(pc.Env, actor, func(string) string { return fmt.Sprintf("%s:%s@%d", p.Source, pc.Name, pc.Version) }, &p)
	if err != nil {
		return nil, err
	}
	return []message.Envelope{e}, nil
}

// ChangedKeys lists the top-level keys whose value differs between two runtime documents.
func ChangedKeys(prev, cur []byte) ([]string, error) {
	var a, b map[string]json.RawMessage
	if len(prev) > 0 {
		if err := json.Unmarshal(prev, &a); err != nil {
			a = nil // a previous bare-string runtime: everything is new
		}
	}
	if err := json.Unmarshal(cur, &b); err != nil {
		return nil, fmt.Errorf("runtime is not a JSON object: %w", err)
	}
	var keys []string
	for k := range b {
		if k == "" {
			return nil, errors.New("runtime has an empty key")
		}
	}
	for k, v := range b {
		if old, ok := a[k]; !ok || !sameJSON(old, v) {
			keys = append(keys, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if keys == nil {
		keys = []string{}
	}
	return keys, nil
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// root builds a root envelope whose change set id is its own id.
func root(env string, actor message.Actor, idem func(id string) string, p *message.ChangeDetected) (message.Envelope, error) {
	e, err := message.New(message.TypeChangeDetected, env, actor, "", struct{}{})
	if err != nil {
		return e, err
	}
	p.ChangeSetID = e.ID
	e.IdempotencyKey = idem(e.ID)
	e.Payload, err = json.Marshal(p)
	return e, err
}

func sortRefs(r []message.ComponentRef) {
	sort.Slice(r, func(i, j int) bool { return r[i].Type+"/"+r[i].Nickname < r[j].Type+"/"+r[j].Nickname })
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
