package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/trigger"
)

// POST /request-change — a proposed config becomes a commit and a queued change, as
// `karma propose-change` does: the proposal (the component's new environment file) is validated
// with the rest of the repository at the deploy branch's head (configrepo.CheckProposal: JSON,
// schema, references, cycles); 422 lists every error with its JSON pointer in the request
// (/proposed_change/...). A component with a change still pending (not done, not rejected, the
// component a root of it) is a conflict (409): approve, reject or wait for that one first. The
// proposal is then committed (author: requested_by; committer: the caller) where the server may
// write (configrepo.Writer: the deploy branch or a change branch), and the change of that commit
// queued (change.detected, actor: the caller). 201, Location: /changes/{id}, with the impact.
// auto_approve (plans applied without review) needs the approve scope.

// ChangeRequest is the body of POST /request-change.
type ChangeRequest struct {
	Component      string          `json:"component"`       // <env>/<type>/<nickname>
	ProposedChange json.RawMessage `json:"proposed_change"` // the component's new environment file
	RequestedBy    string          `json:"requested_by"`    // on whose behalf: "Name <email>" or a login
	AutoApprove    bool            `json:"auto_approve,omitempty"`
}

// ChangeCreated is the answer of POST /request-change (201).
type ChangeCreated struct {
	ChangeID  string             `json:"change_id"`
	Component string             `json:"component"`
	Commit    string             `json:"commit"`
	Branch    string             `json:"branch"`
	Base      string             `json:"base"` // the commit the proposal was validated against
	Impact    graph.ImpactReport `json:"impact"`
}

// pendingRequest is a request accepted (at) whose change set resolve has not created yet.
type pendingRequest struct {
	changeID string
	at       time.Time
}

// pendingRequestBound is how long a request accepted by this server, whose change set resolve
// has not created, keeps a second request for its component out (409). Resolve's retry horizon
// is five receives of its queue — on AWS about 15 minutes (visibility timeout: its 120 s
// function timeout plus a minute), on the embedded queue seconds — so a change.detected not
// resolved after four times that never will be: it was dead-lettered (karma dlq list) or lost.
// The entry then stops blocking, lest the component answer 409 until the server restarts; were
// the first change to resolve after all, change-set ordering queues the second behind it.
const pendingRequestBound = time.Hour

func (s *server) requestChange(w http.ResponseWriter, r *http.Request, c Caller) error {
	var in ChangeRequest
	if err := decodeBody(r, s.cfg.MaxBody, &in); err != nil {
		return err
	}
	ctx := r.Context()
	chk, err := s.checkProposal(ctx, in, c,
		"this server may not write the config repository (KARMA_GIT_WRITE=none): commit the change to Git yourself; the push deploys it")
	if err != nil {
		return err
	}
	env, typ, nick, head := chk.env, chk.typ, chk.nick, chk.head
	id := chk.ID()
	s.mu.Lock() // one request per component at a time in this process; see pending
	defer s.mu.Unlock()
	if err := s.pending(ctx, env, id); err != nil {
		return err
	}
	reqID := uuid.Must(uuid.NewV7()).String()
	requester, err := gitrepo.SignatureOf(in.RequestedBy) // checked with the request: see checkRequest
	if err != nil {
		return invalid("the change request is invalid: nothing was committed or queued", FieldError{Pointer: "/requested_by", Detail: err.Error()})
	}
	sha, err := s.cfg.Writer.Commit(ctx, configrepo.Proposal{ID: reqID, Base: head, Files: map[string][]byte{chk.File: fileOf(in.ProposedChange)},
		Requester: requester, Summary: typ + "/" + nick + " in " + env})
	if err != nil {
		return commitProblem(err)
	}
	branch := s.cfg.Writer.BranchOf(reqID)
	root, err := trigger.FromRequest(trigger.Request{ID: reqID, Env: env, Configs: map[string][]byte{typ + "/" + nick: in.ProposedChange}, Actor: c.Actor(),
		AutoApprove: in.AutoApprove, Commit: &message.Commit{SHA: sha, Author: requester.Name + " <" + requester.Email + ">", Message: "karma change " + reqID, Branch: branch}})
	if err != nil {
		return fmt.Errorf("commit %.12s made, but its change: %w", sha, err)
	}
	if err := s.cfg.Publisher.Publish(ctx, root); err != nil {
		return unavailable("committed %.12s on %s, but queueing its change failed (%v): the push of the commit deploys it, or run 'karma ingest commit %s'", sha, branch, err, sha)
	}
	s.requests[id] = pendingRequest{changeID: root.ID, at: s.cfg.Now()}
	detail := map[string]any{"change_set_id": root.ID, "component": id, "commit": sha, "branch": branch, "requested_by": in.RequestedBy, "auto_approve": in.AutoApprove}
	if err := s.record(ctx, r, EntryRequested, c, env, root.ID, detail); err != nil {
		s.cfg.Log.Warn("api: change queued, its audit entry not written (the change.detected is audited with the caller)", "change", root.ID, "error", err)
	}
	w.Header().Set("Location", "/changes/"+url.PathEscape(root.ID))
	return writeJSON(w, http.StatusCreated, ChangeCreated{ChangeID: root.ID, Component: id, Commit: sha, Branch: branch, Base: head, Impact: chk.Impact})
}

// checkedProposal is a proposal that passed checkProposal: where it goes, and the commit it was
// validated against.
type checkedProposal struct {
	env, typ, nick, head string
	*configrepo.Checked
}

// checkProposal is what POST /request-change and POST /impact both do first: the request's own
// fields (checkRequest), then the proposal validated with the rest of the repository at the
// deploy branch's head (422 with every error's pointer). readOnly is the 409's detail on a
// server that takes no proposals.
func (s *server) checkProposal(ctx context.Context, in ChangeRequest, c Caller, readOnly string) (checkedProposal, error) {
	var p checkedProposal
	var err error
	if p.env, p.typ, p.nick, err = checkRequest(in, c); err != nil {
		return p, err
	}
	if s.cfg.Proposals == nil {
		return p, problem(http.StatusConflict, TypeReadOnly, readOnly)
	}
	if p.head, err = s.cfg.Proposals.Head(ctx); err != nil {
		return p, fmt.Errorf("the deploy branch's head: %w", err)
	}
	p.Checked, err = s.cfg.Proposals.CheckProposal(ctx, p.head, p.env, p.typ, p.nick, in.ProposedChange)
	return p, proposalProblem(err, in.Component, p.head)
}

// checkRequest validates the request's own fields, every problem at once.
func checkRequest(in ChangeRequest, c Caller) (env, typ, nick string, err error) {
	var errs []FieldError
	parts := strings.Split(in.Component, "/")
	switch {
	case in.Component == "":
		errs = append(errs, FieldError{Pointer: "/component", Detail: "required: the component to change, <env>/<type>/<nickname>"})
	case len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "":
		errs = append(errs, FieldError{Pointer: "/component", Detail: "want <env>/<type>/<nickname>, e.g. prod/vpc/core"})
	default:
		env, typ, nick = parts[0], parts[1], parts[2]
	}
	var obj map[string]any
	switch err := json.Unmarshal(in.ProposedChange, &obj); {
	case !bytes.HasPrefix(bytes.TrimSpace(in.ProposedChange), []byte("{")):
		errs = append(errs, FieldError{Pointer: "/proposed_change", Detail: "required: the component's new environment file, a JSON object"})
	case err != nil: // an object holding what JSON allows and a config cannot (a number beyond float64)
		errs = append(errs, FieldError{Pointer: "/proposed_change", Detail: "not usable as the component's environment file: " + err.Error()})
	}
	for _, ptr := range redactedPointers(obj, "/proposed_change") {
		errs = append(errs, FieldError{Pointer: ptr, Detail: fmt.Sprintf("%q is the placeholder GET /components shows for a secret, not its value: put the secret (or a reference to it) back before proposing", Redacted)})
	}
	if strings.TrimSpace(in.RequestedBy) == "" {
		errs = append(errs, FieldError{Pointer: "/requested_by", Detail: `required: on whose behalf, "Name <email>" or a login (the commit's author)`})
	} else if _, err := gitrepo.SignatureOf(in.RequestedBy); err != nil {
		errs = append(errs, FieldError{Pointer: "/requested_by", Detail: "not usable as the commit's author: " + err.Error()})
	}
	if in.AutoApprove && !c.Has(ScopeApprove) {
		errs = append(errs, FieldError{Pointer: "/auto_approve", Detail: c.Name + " lacks the approve scope: leave auto_approve out, and have the plans approved"})
	}
	if len(errs) > 0 {
		return "", "", "", invalid("the change request is invalid: nothing was committed or queued", errs...)
	}
	return env, typ, nick, nil
}

// PlaceholderPointers lists the JSON pointers of the values of a proposal (a component's
// environment file) that still hold Redacted, the placeholder GET /components shows for a
// secret: committed, it would replace the secret. Every mode refuses such a proposal (the CLI's
// propose-change as POST /request-change does). Nil when there is none, or data is not JSON.
func PlaceholderPointers(data []byte) []string {
	var doc any
	if json.Unmarshal(data, &doc) != nil {
		return nil
	}
	return redactedPointers(doc, "")
}

// proposalProblem explains why a proposal was refused, pointing into the request.
func proposalProblem(err error, component, head string) error {
	var bad *configrepo.InvalidProposalError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, configrepo.ErrNoSuchComponent):
		return invalid(fmt.Sprintf("%s is not defined at the deploy branch's head %.12s: nothing was committed or queued", component, head),
			FieldError{Pointer: "/component", Detail: "no such component: GET /graph lists them; a new component is added by a commit"})
	case errors.Is(err, configrepo.ErrUnchanged):
		return invalid("the proposal changes nothing: nothing was committed or queued",
			FieldError{Pointer: "/proposed_change", Detail: fmt.Sprintf("equals what %s holds at %.12s", component, head)})
	case errors.As(err, &bad):
		var errs []FieldError
		for _, d := range bad.Diagnostics {
			ptr := "/proposed_change"
			if d.File == bad.File {
				ptr += d.Pointer
			}
			errs = append(errs, FieldError{Pointer: strings.TrimSuffix(ptr, "/"), Detail: d.String()})
		}
		return invalid(fmt.Sprintf("the repository has %d error(s) with the proposal in place: nothing was committed or queued", len(errs)), errs...)
	}
	return err
}

// commitProblem explains a refused commit.
func commitProblem(err error) error {
	switch {
	case errors.Is(err, configrepo.ErrReadOnly):
		return problem(http.StatusConflict, TypeReadOnly, "%v", err)
	case errors.Is(err, configrepo.ErrConflict):
		return problem(http.StatusConflict, TypeRepositoryChanged, "%v", err)
	}
	return fmt.Errorf("committing the proposal: %w", err)
}

// pending refuses a request for a component that a change not yet settled deploys as a root:
// a change set of the environment not done and not rejected, or a request this server accepted
// whose change set is not resolved yet.
func (s *server) pending(ctx context.Context, env, id string) error {
	all, err := s.cfg.ChangeSets.List(ctx)
	if err != nil {
		return err
	}
	for _, cs := range all {
		if n := cs.Nodes[id]; n != nil && n.Root && cs.Env == env && !cs.Done() && cs.Rejected == "" && cs.RejectedBy == "" {
			return problem(http.StatusConflict, TypePendingChange, "%s has a pending change, %s (%s): approve it (POST /changes/%s/approve), reject it or wait for it to finish, then request again",
				id, cs.ID, stateOf(cs), url.PathEscape(cs.ID))
		}
	}
	if req, ok := s.requests[id]; ok {
		cs, err := s.cfg.ChangeSets.Get(ctx, req.changeID)
		age := s.cfg.Now().Sub(req.at)
		switch {
		case errors.Is(err, changeset.ErrNotFound) && age >= pendingRequestBound:
			// Never resolved (see pendingRequestBound): it no longer holds the component.
			s.cfg.Log.Warn("api: a change accepted long ago was never resolved into a change set; it no longer holds its component",
				"change", req.changeID, "component", id, "accepted", req.at, "age", age)
			delete(s.requests, id)
		case errors.Is(err, changeset.ErrNotFound):
			return problem(http.StatusConflict, TypePendingChange, "%s has a pending change, %s, accepted %s ago (%s) and not resolved yet: wait a moment, then GET /changes/%s; "+
				"GET /log?correlation=%s shows how far it went (a change.detected dead-lettered never resolves: karma dlq list); after %s unresolved it no longer holds %s",
				id, req.changeID, age.Round(time.Second), req.at.UTC().Format(time.RFC3339), url.PathEscape(req.changeID),
				url.QueryEscape(req.changeID), pendingRequestBound, id)
		case err != nil:
			return err
		case cs != nil:
			delete(s.requests, id) // resolved: the change sets above speak for it now
		}
	}
	return nil
}

// fileOf is the proposal as the file committed: indented JSON, as people write them.
func fileOf(proposal json.RawMessage) []byte {
	var b bytes.Buffer
	if json.Indent(&b, proposal, "", "  ") != nil {
		return append(append([]byte{}, proposal...), '\n')
	}
	return append(b.Bytes(), '\n')
}
