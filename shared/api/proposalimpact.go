package api

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/usekarma/karma/shared/configrepo"
)

// POST /impact — a proposal checked without being made (a dry run of POST /request-change):
// the component's new environment file is validated with the rest of the repository at the
// deploy branch's head, exactly as a change request is (422: every error with its JSON pointer
// in the request, /proposed_change/...), and its blast radius predicted (configrepo.Predict):
// the config it changes, the runtime keys that derive from it, what would redeploy in which
// wave and why, and what would be skipped because it consumes none of the changed keys.
// Nothing is committed, queued or recorded.

// ImpactRequest is the body of POST /impact.
type ImpactRequest struct {
	Component      string          `json:"component"`       // <env>/<type>/<nickname>
	ProposedChange json.RawMessage `json:"proposed_change"` // the component's new environment file
}

// ProposalImpact is the answer of POST /impact.
type ProposalImpact struct {
	Component string `json:"component"`
	Base      string `json:"base"` // the commit it was checked against
	File      string `json:"file"` // the environment file the proposal replaces
	configrepo.Prediction
}

func (s *server) postImpact(w http.ResponseWriter, r *http.Request, c Caller) error {
	var in ImpactRequest
	if err := decodeBody(r, s.cfg.MaxBody, &in); err != nil {
		return err
	}
	ctx := r.Context()
	chk, err := s.checkProposal(ctx, ChangeRequest{Component: in.Component, ProposedChange: in.ProposedChange, RequestedBy: "-"}, c,
		"this server takes no proposals (KARMA_GIT_WRITE=none): GET /impact tells what a change to the component may redeploy")
	if err != nil {
		return err
	}
	p, err := s.cfg.Proposals.Predict(ctx, chk.Checked)
	if err != nil {
		return fmt.Errorf("predicting the impact of the proposal: %w", err)
	}
	return writeJSON(w, http.StatusOK, ProposalImpact{Component: chk.ID(), Base: chk.head, File: chk.File, Prediction: *p})
}
